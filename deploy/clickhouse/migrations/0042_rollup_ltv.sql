-- 0042: predicted LTV's purchase days as rollups (issue 18). The customers of a fit were read
-- by regrouping every won deal of every profile and every payment of their identity values per
-- person and day (~200-290 ms at 10M events); with rollups on they are read from stored rows.
--
-- `ltv_purchase_days`: the purchase days of converting persons (as services/attribution/kpis/
-- sql/ltv_customers.sql read them before: winning deals from the profiles, the payments of
-- their identity values, summed per UTC day; the first-touch channel and campaign), one row
-- per (person, day); `person` is the 128-bit hash of the person id. ltv_customers.sql reads it
-- (the facts path) or `ltv_purchase_days_rollup` as `{purchases:Identifier}`.
-- Items (services/rollup/sql/ltv/person.sql): a person's rows of that view; the rollup keeps
-- them with a signed count, and a read takes the rows whose count is above zero.
-- Frozen: later changes are new migrations.

CREATE VIEW IF NOT EXISTS ltv_purchase_days AS
SELECT person, day, sum(amount) AS day_value, max(channel) AS channel, max(campaign) AS campaign
FROM
(
    SELECT murmurHash3_128(person_id) AS person, toDate32(w.1) AS day, w.3 AS amount, first_channel AS channel,
           first_campaign AS campaign
    FROM person_profiles FINAL
    ARRAY JOIN won AS w
    WHERE notEmpty(won)
    UNION ALL
    SELECT p.k_person, toDate32(pw.paid_at), toFloat64(pw.amount), '', ''
    FROM payment_winners AS pw
    INNER JOIN converting_person_keys AS p ON p.k_key_h = cityHash64(pw.identity_key)
    WHERE murmurHash3_128(pw.identity_key) = p.k_key_n
)
GROUP BY person, day;

CREATE TABLE IF NOT EXISTS rollup_items_ltv
(
    entity    String,
    sign      Int8,
    day       Date32,
    day_value Float64,
    channel   String,
    campaign  String
)
ENGINE = MergeTree
ORDER BY entity
SETTINGS cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

CREATE TABLE IF NOT EXISTS rollup_ltv
(
    person    FixedString(16),
    day       Date32,
    day_value Float64,
    channel   String,
    campaign  String,
    n         SimpleAggregateFunction(sum, Int64)
)
ENGINE = AggregatingMergeTree
ORDER BY (person, day, day_value, channel, campaign)
SETTINGS cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_ltv_mv TO rollup_ltv AS
SELECT murmurHash3_128(substring(entity, 8)) AS person, day, day_value, channel, campaign, sum(toInt64(sign)) AS n
FROM rollup_items_ltv
WHERE startsWith(entity, 'person:')
GROUP BY person, day, day_value, channel, campaign;

CREATE VIEW IF NOT EXISTS ltv_purchase_days_rollup AS
SELECT person, day, day_value, channel, campaign
FROM rollup_ltv
GROUP BY person, day, day_value, channel, campaign
HAVING sum(n) > 0;
