-- Items of converting persons (person_id) for predicted LTV (migration 0042): their purchase
-- days, the rows of `ltv_purchase_days` whose person is theirs.
SELECT k.key AS id, d.day AS day, d.day_value AS day_value, d.channel AS channel, d.campaign AS campaign
FROM
(
    SELECT * FROM ltv_purchase_days WHERE person IN (SELECT murmurHash3_128(key) FROM rollup_ids)
) AS d
INNER JOIN (SELECT key, murmurHash3_128(key) AS h FROM rollup_ids) AS k ON d.person = k.h
