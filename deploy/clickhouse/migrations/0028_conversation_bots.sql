-- 0028: bots and the hand-over to operators per conversation (contract v1.1 section 4,
-- issue 17; readings docs/kpi-readings.md B1-B4), written by enrich with the rest of the row
-- (services/enrich/conversations.py):
--   bot_messages       bot messages in the conversation
--   first_operator_at  the first operator message, in (t, id) order, at any time ...
--   first_operator     ... and its operator
--   handoff_bot_at     the last bot message before that operator message (NULL: none)
-- Rows written before this migration get them from their stored events
-- (conversation_events, migration 0006) once, below.
-- Frozen: later changes are new migrations.

ALTER TABLE conversation_facts
    ADD COLUMN IF NOT EXISTS bot_messages UInt32 DEFAULT 0;

ALTER TABLE conversation_facts
    ADD COLUMN IF NOT EXISTS first_operator_at Nullable(DateTime64(3, 'UTC'));

ALTER TABLE conversation_facts
    ADD COLUMN IF NOT EXISTS first_operator String DEFAULT '';

ALTER TABLE conversation_facts
    ADD COLUMN IF NOT EXISTS handoff_bot_at Nullable(DateTime64(3, 'UTC'));

-- the backfill: rows of existing conversations again, at the next version, with the same
-- columns computed from their stored messages in (t, id) order (nothing else changes)
INSERT INTO conversation_facts
SELECT f.* REPLACE (
    f.version + 1 AS version,
    b.b_messages AS bot_messages,
    b.b_first_operator_at AS first_operator_at,
    b.b_first_operator AS first_operator,
    b.b_handoff_bot_at AS handoff_bot_at
)
FROM conversation_facts AS f FINAL
INNER JOIN
(
    SELECT
        conversation_id,
        toUInt32(arrayCount(m -> m.3 = 'bot', ms)) AS b_messages,
        arrayFirstIndex(m -> m.3 = 'operator', ms) AS b_op_idx,
        if(b_op_idx = 0, NULL, ms[b_op_idx].1) AS b_first_operator_at,
        if(b_op_idx = 0, '', ms[b_op_idx].4) AS b_first_operator,
        if(b_op_idx = 0, NULL,
           arrayLastOrNull(m -> m.3 = 'bot', arraySlice(ms, 1, b_op_idx - 1)).1) AS b_handoff_bot_at
    FROM
    (
        SELECT
            conversation_id,
            arraySort(m -> (m.1, m.2), groupArray((occurred_at, event_id,
                JSONExtractString(payload, 'author'), JSONExtractString(payload, 'operator_id')))) AS ms
        FROM conversation_events
        WHERE type = 'message'
        GROUP BY conversation_id
    )
    WHERE b_messages > 0 OR b_op_idx > 0
) AS b ON b.conversation_id = f.conversation_id;

-- merge the replaced versions now: the KPI queries read the table with FINAL, and unmerged
-- copies of every conversation would cost each of them until a background merge
OPTIMIZE TABLE conversation_facts FINAL;

-- 0003's view again, so that it has the new columns (a view keeps the columns its
-- SELECT * had when it was created).
CREATE OR REPLACE VIEW conversations AS
SELECT *
FROM conversation_facts FINAL
WHERE started = 1;
