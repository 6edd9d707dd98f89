-- Items of conversations (rollup_items_operators, migration 0035), as the reference
-- (services/attribution/kpis/sql/operators.sql) reads them, all time, dated by the start:
--   one handled item per operator who sent a message in it (one more per converting person
--   whose contact keys it carries: the reference's LEFT JOIN); `converted` when that person
--   won a deal within the window after the start (O4)
--   one item per transfer, credited to its from_operator (transfers = 1)
-- A conversation not started (or gone) gives no rows.
SELECT
    h.id AS id,
    toDate32(h.at) AS day,
    h.op AS operator_id,
    toUInt8(1) AS handled,
    toUInt8(arrayExists(w -> w >= h.at AND w <= addMilliseconds(h.at, {conversion_window_ms:Int64}), k.won)) AS converted,
    h.messages AS messages,
    h.templated AS templated,
    toUInt32(0) AS transfers,
    h.frt AS frt,
    h.sla_n AS sla_n,
    h.sla_ok AS sla_ok,
    h.art_sum AS art_sum,
    h.art_n AS art_n,
    -- the interval's ends as the reference's maxIntersections encodes them (O5)
    toUnixTimestamp64Milli(h.b) * 4 + 1 AS conc_b,
    toUnixTimestamp64Milli(h.e) * 4 + if(h.e = h.b, 2, 0) AS conc_e,
    toUInt8(0) AS csat_n,
    toUInt8(0) AS csat_ok,
    toUInt8(0) AS nps_n,
    toUInt8(0) AS nps_promoters,
    toUInt8(0) AS nps_detractors,
    h.bot_n AS bot_n,
    h.handoff AS handoff
FROM
(
    SELECT
        conversation_id AS id,
        key_h,
        key_n,
        start AS at,
        o.1 AS op,
        toUInt32(o.2) AS messages,
        toUInt32(o.3) AS templated,
        if(o.1 = first_reply_operator, frt_s, NULL) AS frt,
        toUInt8(o.1 = first_reply_operator AND frt_s IS NOT NULL AND sla_idx > 0) AS sla_n,
        toUInt8(o.1 = first_reply_operator AND frt_s IS NOT NULL AND sla_idx > 0
                AND frt_s <= arrayElement({sla_seconds:Array(Float64)}, sla_idx)) AS sla_ok,
        toFloat64(ot.1) AS art_sum,
        toUInt32(ot.2) AS art_n,
        greatest(start, o.4) AS b,
        greatest(conv_end, start, o.4) AS e,
        toUInt8(bot_base AND o.1 = first_operator) AS bot_n,
        if(bot_base AND o.1 = first_operator AND handoff_bot_at IS NOT NULL,
           (toUnixTimestamp64Milli(assumeNotNull(first_operator_at))
            - toUnixTimestamp64Milli(assumeNotNull(handoff_bot_at))) / 1000, NULL) AS handoff
    FROM
    (
        SELECT
            conversation_id,
            key_h,
            key_n,
            assumeNotNull(started_at) AS start,
            ifNull(closed_at, greatest(ifNull(last_event_at, start), start)) AS conv_end,
            indexOf({sla_channels:Array(String)}, toString(channel)) AS sla_idx,
            first_reply_operator,
            frt_s,
            operators,
            operator_turns,
            toUInt8(initiated_by = 'visitor' AND bot_messages > 0) AS bot_base,
            first_operator,
            first_operator_at,
            handoff_bot_at
        FROM conversations
        WHERE conversation_id IN (SELECT key FROM rollup_ids) AND notEmpty(operators)
    )
    ARRAY JOIN operators AS o, operator_turns AS ot
) AS h
LEFT JOIN
(
    -- the contact keys of converting persons (view, migration 0010), those these conversations carry
    SELECT k_key_h, k_key_n, won
    FROM converting_contact_keys
    WHERE k_key_h IN (SELECT key_h FROM conversations WHERE conversation_id IN (SELECT key FROM rollup_ids))
) AS k ON k.k_key_h = h.key_h AND k.k_key_n = h.key_n

UNION ALL

SELECT
    conversation_id,
    toDate32(start),
    tr.2,
    toUInt8(0), toUInt8(0), toUInt32(0), toUInt32(0), toUInt32(1),
    CAST(NULL AS Nullable(Float64)), toUInt8(0), toUInt8(0), toFloat64(0), toUInt32(0),
    toInt64(0), toInt64(0),
    toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0), toUInt8(0),
    CAST(NULL AS Nullable(Float64))
FROM
(
    SELECT conversation_id, assumeNotNull(started_at) AS start, transfers
    FROM conversations
    WHERE conversation_id IN (SELECT key FROM rollup_ids) AND notEmpty(transfers)
)
ARRAY JOIN transfers AS tr
