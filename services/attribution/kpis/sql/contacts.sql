-- Drill-down: one row per contact (contract v1.1 section 4), for `leadflow contacts`, the
-- HTML report (slowest answered, latest missed) and the dashboard's contacts table.
-- Readings: docs/kpi-readings.md R1-R6 (and S1, S5, S8-S10, O4 for the shared definitions).
--
-- Parameters (server-side binding):
--   date_from, date_to    Date32         half-open period of the contact's start (UTC dates)
--   conversion_window_ms  Int64          person_converted: a deal within this window after the start
--   missed_after_ms       Int64          deadline after the last visitor message (S5)
--   now                   Nullable(DateTime64(3, 'UTC'))  NULL = max(raw_events.occurred_at) (S5)
--   channels              Array(String)  channels to include; [] = all
--   operators             Array(String)  contacts handled by one of these; [] = all
--   missed_only           UInt8          1 = missed contacts only
--   order                 String         'recent' (newest first) or 'slowest' (answered, slowest first)
--   limit                 UInt64         at most this many rows
--
-- Contacts: conversations of a non-`call` channel and inbound calls (as the service rows, S8).
SELECT
    contact_id,
    kind,
    channel,
    started_at,
    op_ids AS operators,
    first_response_s,
    toBool(missed) AS missed,
    toInt64(transfers) AS transfers,
    if(s.csat_n = 0, NULL, s.csat_s) AS csat,
    if(s.nps_n = 0, NULL, s.nps_s) AS nps,
    toBool(arrayExists(d -> d.1 >= started_at AND d.1 <= addMilliseconds(started_at, {conversion_window_ms:Int64}),
                       k.won)) AS person_converted,
    toFloat64(arraySum(arrayMap(d -> d.3,
        arrayFilter(d -> d.1 >= started_at AND d.1 <= addMilliseconds(started_at, {conversion_window_ms:Int64}),
                    k.won)))) AS revenue
FROM
(
    SELECT *
    FROM
    (
        SELECT
            conversation_id AS contact_id,
            'conversation' AS kind,
            toString(channel) AS channel,
            assumeNotNull(started_at) AS started_at,
            arrayMap(o -> o.1, arraySort(o -> (o.4, o.1), operators)) AS op_ids,
            frt_s AS first_response_s,
            ifNull(closed_at, addMilliseconds(last_visitor_at, {missed_after_ms:Int64})) AS deadline,
            -- S5, as service.sql
            toUInt8(ifNull(
                initiated_by = 'visitor' AND visitor_messages > 0
                AND (first_any_reply_at IS NULL OR first_any_reply_at > deadline)
                AND (closed_at IS NOT NULL
                     OR deadline <= coalesce({now:Nullable(DateTime64(3, 'UTC'))},
                                             (SELECT max(occurred_at) FROM raw_events))),
                0)) AS missed,
            length(transfers) AS transfers,
            key_h,
            key_n
        FROM conversations
        WHERE channel != 'call'
          AND toDate32(started_at) >= {date_from:Date32} AND toDate32(started_at) < {date_to:Date32}
          AND (empty({channels:Array(String)}) OR has({channels:Array(String)}, toString(channel)))
          AND (empty({operators:Array(String)})
               OR hasAny(arrayMap(o -> o.1, operators), {operators:Array(String)}))

        UNION ALL

        SELECT
            call_id,
            'call',
            'call',
            started_at,
            if(outcome = 'answered' AND operator_id != '', [operator_id], CAST([] AS Array(String))),
            -- R2: a call's first response is its wait to be answered
            if(outcome = 'answered' AND answered_at IS NOT NULL,
               (toUnixTimestamp64Milli(assumeNotNull(answered_at)) - toUnixTimestamp64Milli(started_at)) / 1000, NULL),
            NULL,
            toUInt8(toString(outcome) IN ('missed', 'abandoned')),
            0,
            key_h,
            key_n
        FROM call_winners
        WHERE direction = 'inbound'
          AND toDate32(started_at) >= {date_from:Date32} AND toDate32(started_at) < {date_to:Date32}
          AND (empty({channels:Array(String)}) OR has({channels:Array(String)}, 'call'))
          AND (empty({operators:Array(String)})
               OR (outcome = 'answered' AND has({operators:Array(String)}, operator_id)))
    )
    WHERE (missed = 1 OR NOT {missed_only:UInt8})
      AND ({order:String} != 'slowest' OR first_response_s IS NOT NULL)
    ORDER BY if({order:String} = 'slowest', ifNull(first_response_s, 0), 0) DESC, started_at DESC, contact_id
    LIMIT {limit:UInt64}
) AS c
LEFT JOIN
(
    -- the latest csat and nps response of each contact (R4)
    SELECT if(conversation_id != '', 'conversation', 'call') AS skind,
           if(conversation_id != '', conversation_id, call_id) AS sid,
           argMaxIf(toFloat64(score), (responded_at, event_id), survey = 'csat') AS csat_s,
           countIf(survey = 'csat') AS csat_n,
           argMaxIf(toFloat64(score), (responded_at, event_id), survey = 'nps') AS nps_s,
           countIf(survey = 'nps') AS nps_n
    FROM surveys FINAL
    WHERE conversation_id != '' OR call_id != ''
    GROUP BY skind, sid
) AS s ON s.skind = c.kind AND s.sid = c.contact_id
LEFT JOIN
-- every identity key that a contact carries, of a person with a deal or a lead (migration 0010)
profile_contact_keys AS k ON k.k_key_h = c.key_h AND k.k_key_n = c.key_n
ORDER BY if({order:String} = 'slowest', ifNull(first_response_s, 0), 0) DESC, started_at DESC, contact_id
