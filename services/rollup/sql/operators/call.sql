-- Items of calls (rollup_items_operators, migration 0035): an inbound answered call with an
-- operator is one handled item of that operator, dated by its start (one more per converting
-- person whose contact keys it carries, as the reference's LEFT JOIN); `converted` when that
-- person won a deal within the window after the start (O4). Its interval: [answered_at, else
-- started_at, ended_at] (O5). Any other call gives no rows.
SELECT
    h.call_id AS id,
    toDate32(h.started_at) AS day,
    h.operator_id AS operator_id,
    toUInt8(1) AS handled,
    toUInt8(arrayExists(w -> w >= h.started_at AND w <= addMilliseconds(h.started_at, {conversion_window_ms:Int64}),
                        k.won)) AS converted,
    toUInt32(0) AS messages,
    toUInt32(0) AS templated,
    toUInt32(0) AS transfers,
    CAST(NULL AS Nullable(Float64)) AS frt,
    toUInt8(0) AS sla_n,
    toUInt8(0) AS sla_ok,
    toFloat64(0) AS art_sum,
    toUInt32(0) AS art_n,
    toUnixTimestamp64Milli(h.b) * 4 + 1 AS conc_b,
    toUnixTimestamp64Milli(h.ended_at) * 4 + if(h.ended_at = h.b, 2, 0) AS conc_e,
    toUInt8(0) AS csat_n,
    toUInt8(0) AS csat_ok,
    toUInt8(0) AS nps_n,
    toUInt8(0) AS nps_promoters,
    toUInt8(0) AS nps_detractors,
    toUInt8(0) AS bot_n,
    CAST(NULL AS Nullable(Float64)) AS handoff
FROM
(
    SELECT call_id, key_h, key_n, started_at, operator_id, ifNull(answered_at, started_at) AS b, ended_at
    FROM call_winners
    WHERE call_id IN (SELECT key FROM rollup_ids)
      AND direction = 'inbound' AND outcome = 'answered' AND operator_id != ''
) AS h
LEFT JOIN
(
    -- the contact keys of converting persons (view, migration 0010), those these calls carry
    SELECT k_key_h, k_key_n, won
    FROM converting_contact_keys
    WHERE k_key_h IN (SELECT key_h FROM call_winners WHERE call_id IN (SELECT key FROM rollup_ids))
) AS k ON k.k_key_h = h.key_h AND k.k_key_n = h.key_n
