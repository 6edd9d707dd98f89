-- Items of lead winners (lead_id): the earliest (lead_at, event_id) row, as lead_winners.
-- A lead counts on its date for its channel and campaign, and is converted when a
-- converting person holding its identity key now (converting_person_keys, the profiles)
-- won a deal in [lead_at, lead_at + window] (M5): the stage re-announces a person's
-- leads when the person changes. It is also a touch of its campaign (M8).
WITH winners AS
(
    SELECT lead_id, event_id, identity_key, lead_at, toString(channel) AS channel, campaign_id
    FROM leads
    WHERE lead_id IN (SELECT key FROM rollup_ids)
    ORDER BY lead_id, lead_at, event_id
    LIMIT 1 BY lead_id
)
SELECT
    l.lead_id AS id,
    toDate32(l.lead_at) AS day,
    l.channel AS channel,
    l.campaign_id AS campaign_id,
    '' AS model, toDecimal128(0, 6) AS spend, toInt64(0) AS spend_rows,
    toInt64(1) AS leads, toInt64(c.converted) AS converted,
    toFloat64(0) AS conversions, toFloat64(0) AS revenue,
    toInt64(0) AS customers, toDecimal128(0, 6) AS ltv, toInt64(0) AS ltv_n,
    concat(leftPad(toString(toUnixTimestamp64Milli(l.lead_at)), 16, '0'), '\t', l.event_id) AS touch
FROM winners AS l
LEFT JOIN
(
    -- as the reference's join: one term per converting person holding the key
    SELECT w.lead_id AS lead_id,
           sum(arrayExists(t -> t >= w.lead_at AND t <= addMilliseconds(w.lead_at, {conversion_window_ms:Int64}), p.won)) AS converted
    FROM winners AS w
    INNER JOIN converting_person_keys AS p ON p.k_key_h = cityHash64(w.identity_key)
    WHERE murmurHash3_128(w.identity_key) = p.k_key_n
    GROUP BY w.lead_id
) AS c ON c.lead_id = l.lead_id
