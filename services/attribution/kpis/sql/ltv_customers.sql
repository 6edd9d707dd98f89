-- Customers of the calibration period, one row each, for predicted LTV (contract
-- v1.1 section 2; services/attribution/kpis/ltv.py fits BG/NBD and Gamma-Gamma on them).
-- Readings: docs/kpi-readings.md "Predicted LTV".
--
-- Parameters (server-side binding):
--   date_to    Nullable(Date32)  --to: purchases on days before it; NULL = all of them
--   purchases  Identifier        ltv_purchase_days (from the facts) or ltv_purchase_days_rollup
--                                (the rollups, migration 0042): one row per person and purchase day
--
-- Purchases of a converting person (their profile, migration 0010): winning deals (won) and
-- the payments of their identity values, in the reporting currency, summed per UTC day (the
-- view `ltv_purchase_days`, migration 0042). L = the day before --to, else the day of the
-- newest event. Per customer (first purchase day F <= L): x = purchase days after F up to L,
-- t_x = last purchase day - F, T = L - F (days; ltv.py turns them into weeks), m = the mean
-- value of the repeat purchase days (NULL when x = 0), value = all purchases up to L (historic
-- LTV), channel and campaign = those of the person's first-ever touch (campaign: migration
-- 0027; '' without one). Rows in the order of the person's hash, a fixed order for the fit
-- (ordering by channel first cost ~50 ms of a ~160 ms read at 10M events).
SELECT
    max(channel) AS channel,
    max(campaign) AS campaign,
    toInt64(countIf(day <= l) - 1) AS x,
    dateDiff('day', minIf(day, day <= l), maxIf(day, day <= l)) AS t_x_days,
    dateDiff('day', minIf(day, day <= l), any(l)) AS t_days,
    if(x = 0, NULL, (sumIf(day_value, day <= l) - argMinIf(day_value, day, day <= l)) / x) AS m,
    sumIf(day_value, day <= l) AS value
FROM {purchases:Identifier} AS purchase_days
CROSS JOIN
(
    SELECT if(isNull({date_to:Nullable(Date32)}), toDate32(newest), assumeNotNull({date_to:Nullable(Date32)}) - 1) AS l
    FROM (SELECT max(occurred_at) AS newest FROM raw_events)
) AS calibration
GROUP BY person
HAVING countIf(day <= l) > 0
ORDER BY person
