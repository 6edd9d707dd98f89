-- Items of converting persons (person_id, their profile): customers on the first won date
-- and all-time ltv, by the channel of the first-ever touch (no campaign).
SELECT
    person_id AS id,
    toDate32(arrayMin(w -> w.1, won)) AS day,
    first_channel AS channel,
    '' AS campaign_id,
    '' AS model, toDecimal128(0, 6) AS spend, toInt64(0) AS spend_rows,
    toInt64(0) AS leads, toInt64(0) AS converted,
    toFloat64(0) AS conversions, toFloat64(0) AS revenue,
    toInt64(1) AS customers, toDecimal128(value, 6) AS ltv, toInt64(1) AS ltv_n,
    '' AS touch
FROM person_profiles FINAL
WHERE person_id IN (SELECT key FROM rollup_ids) AND notEmpty(won)
