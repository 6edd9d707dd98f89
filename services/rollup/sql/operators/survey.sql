-- Items of survey responses (rollup_items_operators, migration 0035), dated by the response
-- (S10): credited to the response's operator, else the last operator of its conversation,
-- else the operator of its answered call; a response credited to nobody gives no rows.
SELECT
    event_id AS id,
    toDate32(responded_at) AS day,
    op AS operator_id,
    toUInt8(0) AS handled,
    toUInt8(0) AS converted,
    toUInt32(0) AS messages,
    toUInt32(0) AS templated,
    toUInt32(0) AS transfers,
    CAST(NULL AS Nullable(Float64)) AS frt,
    toUInt8(0) AS sla_n,
    toUInt8(0) AS sla_ok,
    toFloat64(0) AS art_sum,
    toUInt32(0) AS art_n,
    toInt64(0) AS conc_b,
    toInt64(0) AS conc_e,
    toUInt8(survey = 'csat') AS csat_n,
    toUInt8(survey = 'csat' AND score >= 4) AS csat_ok,
    toUInt8(survey = 'nps') AS nps_n,
    toUInt8(survey = 'nps' AND score >= 9) AS nps_promoters,
    toUInt8(survey = 'nps' AND score <= 6) AS nps_detractors,
    toUInt8(0) AS bot_n,
    CAST(NULL AS Nullable(Float64)) AS handoff
FROM
(
    SELECT
        s.event_id AS event_id,
        s.responded_at AS responded_at,
        multiIf(s.operator_id != '', s.operator_id,
                cv.last_operator != '', cv.last_operator,
                cl.outcome = 'answered', cl.operator_id,
                '') AS op,
        toString(s.survey) AS survey,
        s.score AS score
    FROM
    (
        SELECT event_id, responded_at, survey, score, conversation_id, call_id, operator_id
        FROM surveys FINAL
        WHERE event_id IN (SELECT key FROM rollup_ids)
    ) AS s
    LEFT JOIN
    (
        SELECT conversation_id, last_operator
        FROM conversations
        WHERE conversation_id IN (SELECT conversation_id FROM surveys
                                  WHERE event_id IN (SELECT key FROM rollup_ids) AND conversation_id != '' AND operator_id = '')
    ) AS cv ON cv.conversation_id = s.conversation_id
    LEFT JOIN
    (
        SELECT call_id, outcome, operator_id
        FROM call_winners
        WHERE call_id IN (SELECT call_id FROM surveys
                          WHERE event_id IN (SELECT key FROM rollup_ids) AND call_id != '' AND operator_id = '')
    ) AS cl ON cl.call_id = s.call_id
)
WHERE op != ''
