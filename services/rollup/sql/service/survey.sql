-- Items of survey responses (rollup of `service`, migration 0034): one row per response, dated
-- by its response, under the channel of its conversation, else `call` for a known call (either
-- direction), else (none) (S10). The stage re-announces the surveys of a changed conversation
-- or call, so a response whose conversation arrives late moves to its channel.
SELECT
    s.event_id AS id,
    toDate32(s.responded_at) AS day,
    multiIf(cv.conversation_id != '', cv.channel, cl.call_id != '', 'call', '(none)') AS channel,
    toUInt8(0) AS conv_n,
    CAST(NULL AS Nullable(Float64)) AS frt,
    toFloat64(0) AS turn_sum,
    toUInt32(0) AS turn_n,
    toUInt8(0) AS sla_n,
    toUInt8(0) AS sla_ok,
    toUInt8(0) AS missed,
    CAST(NULL AS Nullable(Int64)) AS deadline,
    toUInt8(0) AS transferred,
    toUInt8(0) AS captured,
    toUInt8(0) AS offered,
    toUInt8(0) AS answered,
    toUInt8(0) AS missed_calls,
    toUInt8(0) AS abandoned,
    CAST(NULL AS Nullable(Float64)) AS wait,
    CAST(NULL AS Nullable(Float64)) AS talk,
    toUInt8(0) AS other,
    toUInt8(0) AS hit,
    CAST([] AS Array(String)) AS deals,
    toUInt8(s.survey = 'csat') AS csat_n,
    toUInt8(s.survey = 'csat' AND s.score >= 4) AS csat_ok,
    toUInt8(s.survey = 'nps') AS nps_n,
    toUInt8(s.survey = 'nps' AND s.score >= 9) AS nps_promoters,
    toUInt8(s.survey = 'nps' AND s.score <= 6) AS nps_detractors,
    toUInt8(0) AS bot_n,
    toUInt8(0) AS bot_kept,
    CAST(NULL AS Nullable(Float64)) AS handoff
FROM
(
    SELECT event_id, responded_at, toString(survey) AS survey, score, conversation_id, call_id
    FROM surveys FINAL
    WHERE event_id IN (SELECT key FROM rollup_ids)
) AS s
LEFT JOIN
(
    SELECT conversation_id, toString(channel) AS channel
    FROM conversations
    WHERE conversation_id IN (SELECT conversation_id FROM surveys WHERE event_id IN (SELECT key FROM rollup_ids)
                              AND conversation_id != '')
) AS cv ON cv.conversation_id = s.conversation_id
LEFT JOIN
(
    SELECT call_id
    FROM call_winners
    WHERE call_id IN (SELECT call_id FROM surveys WHERE event_id IN (SELECT key FROM rollup_ids) AND call_id != '')
) AS cl ON cl.call_id = s.call_id
