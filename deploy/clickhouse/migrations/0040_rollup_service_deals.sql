-- 0040: the service rollup's distinct deals of lost revenue kept as rows, and the rollup maps no
-- query reads any more dropped (issue 18).
--
-- rollup_service_deals: per (channel, day, deadline, deal, revenue) the signed count of the
-- contacts that found that winning deal (services/rollup/sql/service/kpis.sql, L3). `deal` is
-- the item log's `hex(sipHash128(deal_id))` read back as its 128 bits (no deal id in clear);
-- `deadline` is the conversation's (ms) when its missed flag waits for "now" (the deal counts
-- while now is before it), 9223372036854775807 for a contact that is `other` whatever now is.
-- A query keeps the rows whose net is > 0 and whose deadline is after now, then the distinct
-- (deal, revenue) of each channel: a grouping of 128-bit keys, not of strings out of maps.
-- Fed from the item log by a materialized view (a retracted item's -1 takes its rows out; a
-- SummingMergeTree drops a row whose count nets to 0 when parts merge, so an erased person's
-- deals leave no row behind once `leadflow forget` has merged the rollups); the item rows
-- stored before this migration are copied in at the end.
--
-- rollup_service's maps frt, wait, handoff (read from rollup_quantiles since 0039), deals and
-- pending_deals (read from rollup_service_deals now) and rollup_operators' frt, handoff (0039)
-- and conc (rollup_operator_points, 0038) are dropped, and the two views that wrote them are
-- made again without them: less to insert at every refresh and to keep. Run migrations with
-- the stages stopped, as always (between a view's drop and its creation nothing must be written).
-- Frozen: later changes are new migrations.

CREATE TABLE IF NOT EXISTS rollup_service_deals
(
    channel  String,
    day      Date32,
    deadline Int64,
    deal     UInt128,
    revenue  Float64,
    n        Int64
)
ENGINE = SummingMergeTree
ORDER BY (channel, day, deadline, deal, revenue)
SETTINGS cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

TRUNCATE TABLE rollup_service_deals;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_service_deals_mv TO rollup_service_deals AS
SELECT channel, day, until AS deadline, deal, revenue, sum(toInt64(sign)) AS n
FROM
(
    SELECT sign, day, channel,
           if(other = 1, toInt64(9223372036854775807), assumeNotNull(deadline)) AS until,
           reinterpretAsUInt128(unhex(substring(d, 1, 32))) AS deal,
           toFloat64(substring(d, 34)) AS revenue
    FROM rollup_items_service
    ARRAY JOIN deals AS d
    WHERE other = 1 OR deadline IS NOT NULL
)
GROUP BY channel, day, until, deal, revenue;

-- the item rows stored before this migration (the view's SELECT)
INSERT INTO rollup_service_deals
SELECT channel, day, until AS deadline, deal, revenue, sum(toInt64(sign)) AS n
FROM
(
    SELECT sign, day, channel,
           if(other = 1, toInt64(9223372036854775807), assumeNotNull(deadline)) AS until,
           reinterpretAsUInt128(unhex(substring(d, 1, 32))) AS deal,
           toFloat64(substring(d, 34)) AS revenue
    FROM rollup_items_service
    ARRAY JOIN deals AS d
    WHERE other = 1 OR deadline IS NOT NULL
)
GROUP BY channel, day, until, deal, revenue;

DROP VIEW IF EXISTS rollup_service_mv;

ALTER TABLE rollup_service
    DROP COLUMN IF EXISTS frt,
    DROP COLUMN IF EXISTS wait,
    DROP COLUMN IF EXISTS handoff,
    DROP COLUMN IF EXISTS deals,
    DROP COLUMN IF EXISTS pending_deals;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_service_mv TO rollup_service AS
SELECT
    it.day AS day,
    it.channel AS channel,
    sum(toInt64(it.sign)) AS items,
    sum(it.sign * it.conv_n) AS conv_n,
    sum(it.sign * it.turn_sum) AS turn_sum,
    sum(it.sign * it.turn_n) AS turn_n,
    sum(it.sign * it.sla_n) AS sla_n,
    sum(it.sign * it.sla_ok) AS sla_ok,
    sum(it.sign * it.missed) AS missed,
    sum(it.sign * it.transferred) AS transferred,
    sum(it.sign * it.captured) AS captured,
    sum(it.sign * it.offered) AS offered,
    sum(it.sign * it.answered) AS answered,
    sum(it.sign * it.missed_calls) AS missed_calls,
    sum(it.sign * it.abandoned) AS abandoned,
    sum(it.sign * ifNull(it.talk, 0.)) AS talk_sum,
    sum(it.sign * (it.talk IS NOT NULL)) AS talk_n,
    sum(it.sign * it.other) AS other,
    sum(it.sign * (it.other AND it.hit)) AS other_hit,
    sumMap(if(it.deadline IS NULL, [], [assumeNotNull(it.deadline)]), if(it.deadline IS NULL, [], [toInt64(it.sign)])) AS pending,
    sumMap(if(it.deadline IS NULL OR it.hit = 0, [], [assumeNotNull(it.deadline)]),
           if(it.deadline IS NULL OR it.hit = 0, [], [toInt64(it.sign)])) AS pending_hit,
    sum(it.sign * it.csat_n) AS csat_n,
    sum(it.sign * it.csat_ok) AS csat_ok,
    sum(it.sign * it.nps_n) AS nps_n,
    sum(it.sign * it.nps_promoters) AS nps_promoters,
    sum(it.sign * it.nps_detractors) AS nps_detractors,
    sum(it.sign * it.bot_n) AS bot_n,
    sum(it.sign * it.bot_kept) AS bot_kept
FROM rollup_items_service AS it
GROUP BY it.day, it.channel;

DROP VIEW IF EXISTS rollup_operators_mv;

ALTER TABLE rollup_operators
    DROP COLUMN IF EXISTS frt,
    DROP COLUMN IF EXISTS handoff,
    DROP COLUMN IF EXISTS conc;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_operators_mv TO rollup_operators AS
SELECT
    day,
    operator_id,
    sum(toInt64(sign)) AS items,
    sum(sign * toInt64(handled)) AS handled,
    sum(sign * toInt64(converted)) AS converted,
    sum(sign * toInt64(messages)) AS messages,
    sum(sign * toInt64(templated)) AS templated,
    sum(sign * toInt64(transfers)) AS transfers,
    sum(sign * toInt64(sla_n)) AS sla_n,
    sum(sign * toInt64(sla_ok)) AS sla_ok,
    sum(sign * art_sum) AS art_sum,
    sum(sign * toInt64(art_n)) AS art_n,
    sum(sign * toInt64(csat_n)) AS csat_n,
    sum(sign * toInt64(csat_ok)) AS csat_ok,
    sum(sign * toInt64(nps_n)) AS nps_n,
    sum(sign * toInt64(nps_promoters)) AS nps_promoters,
    sum(sign * toInt64(nps_detractors)) AS nps_detractors,
    sum(sign * toInt64(bot_n)) AS bot_n
FROM rollup_items_operators
GROUP BY day, operator_id
