-- 0011: per-conversation sums and counts of the answered turns, kept next to the turns,
-- and the hashes of the conversation's identity key
-- (issue 7: KPI queries at 10M events).
--
-- The service query summed every conversation's turns and the operators query
-- summed them once per operator, on every run, from the array of turn tuples.
-- These columns hold the same sums, computed by ClickHouse from `turns` and
-- `operators` when a row is inserted (enrich never writes them) and, for rows
-- written before this migration, by the mutation below (until it has run,
-- reading computes them the same way).
--   turn_sum_s      sum of response_s over all answered turns (art, service)
--   turn_count      the number of answered turns (reading `turns` for its length cost
--                   the service query 30 ms at 10M events)
--   operator_turns  one (sum of response_s, turns) per element of `operators`,
--                   in the same order: the turns that operator answered (art, operators)
--   key_h, key_n    cityHash64 and murmurHash3_128 of identity_key, the hashes the
--                   service and operator queries join on (hashing 1.3M keys per query
--                   cost them 30-100 ms of CPU at 10M events)
-- Frozen: later changes are new migrations.

ALTER TABLE conversation_facts
    ADD COLUMN IF NOT EXISTS turn_sum_s Float64 DEFAULT arraySum(arrayMap(t -> t.2, turns));

ALTER TABLE conversation_facts
    ADD COLUMN IF NOT EXISTS turn_count UInt32 DEFAULT length(turns);

ALTER TABLE conversation_facts
    ADD COLUMN IF NOT EXISTS operator_turns Array(Tuple(Float64, UInt32)) DEFAULT
        arrayMap(o -> (arraySum(arrayMap(t -> if(t.3 = 'operator' AND t.4 = o.1, t.2, 0.), turns)),
                       toUInt32(arrayCount(t -> t.3 = 'operator' AND t.4 = o.1, turns))), operators);

ALTER TABLE conversation_facts
    ADD COLUMN IF NOT EXISTS key_h UInt64 DEFAULT cityHash64(identity_key);

ALTER TABLE conversation_facts
    ADD COLUMN IF NOT EXISTS key_n FixedString(16) DEFAULT murmurHash3_128(identity_key);

ALTER TABLE conversation_facts MATERIALIZE COLUMN turn_sum_s SETTINGS mutations_sync = 1;

ALTER TABLE conversation_facts MATERIALIZE COLUMN key_h SETTINGS mutations_sync = 1;

ALTER TABLE conversation_facts MATERIALIZE COLUMN key_n SETTINGS mutations_sync = 1;

ALTER TABLE conversation_facts MATERIALIZE COLUMN turn_count SETTINGS mutations_sync = 1;

ALTER TABLE conversation_facts MATERIALIZE COLUMN operator_turns SETTINGS mutations_sync = 1;

-- 0003's view again, so that it has the new columns (a view keeps the columns its
-- SELECT * had when it was created).
CREATE OR REPLACE VIEW conversations AS
SELECT *
FROM conversation_facts FINAL
WHERE started = 1;
