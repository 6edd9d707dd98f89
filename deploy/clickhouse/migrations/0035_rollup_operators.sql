-- 0035: the rollup of the `operators` grouping (issue 18; /work spec: services/rollup/refresh.py).
--
-- rollup_items_operators: the signed item log. Items (services/rollup/sql/operators/<kind>.sql):
--   conversation  one row per operator who sent a message in it (a handled item, one more per
--                 converting person whose contact keys it carries, as the reference's join) and
--                 one row per transfer, credited to its from_operator
--   call          an inbound answered call with an operator: one handled item (as conversations)
--   survey        a response, credited to its operator (response, else the conversation's last
--                 operator, else the answered call's operator)
-- Every item is dated by `day` (the conversation's or call's start, the response's date) and
-- carries its figures all-time; kpis.sql counts those of the period's days.
--   conc_b, conc_e  a handled item's interval ends encoded as the reference's maxIntersections
--                   (ms * 4 + 1 for the start; ms * 4 + 0, or + 2 for an empty interval, the end)
-- rollup_operators: per (day, operator) the signed sums, the presence count `items` (an operator
-- is a row all-time while it has items, O1), sumMaps value -> count of frt and hand-over waits
-- (exact quantiles) and point -> delta of the interval ends (max_concurrency).
-- Frozen: later changes are new migrations.

CREATE TABLE IF NOT EXISTS rollup_items_operators
(
    entity         String,
    sign           Int8,
    day            Date32,
    operator_id    String,
    handled        UInt8,
    converted      UInt8,
    messages       UInt32,
    templated      UInt32,
    transfers      UInt32,
    frt            Nullable(Float64),
    sla_n          UInt8,
    sla_ok         UInt8,
    art_sum        Float64,
    art_n          UInt32,
    conc_b         Int64,
    conc_e         Int64,
    csat_n         UInt8,
    csat_ok        UInt8,
    nps_n          UInt8,
    nps_promoters  UInt8,
    nps_detractors UInt8,
    bot_n          UInt8,
    handoff        Nullable(Float64)
)
ENGINE = MergeTree
ORDER BY entity;

CREATE TABLE IF NOT EXISTS rollup_operators
(
    day            Date32,
    operator_id    String,
    items          SimpleAggregateFunction(sum, Int64),
    handled        SimpleAggregateFunction(sum, Int64),
    converted      SimpleAggregateFunction(sum, Int64),
    messages       SimpleAggregateFunction(sum, Int64),
    templated      SimpleAggregateFunction(sum, Int64),
    transfers      SimpleAggregateFunction(sum, Int64),
    sla_n          SimpleAggregateFunction(sum, Int64),
    sla_ok         SimpleAggregateFunction(sum, Int64),
    art_sum        SimpleAggregateFunction(sum, Float64),
    art_n          SimpleAggregateFunction(sum, Int64),
    csat_n         SimpleAggregateFunction(sum, Int64),
    csat_ok        SimpleAggregateFunction(sum, Int64),
    nps_n          SimpleAggregateFunction(sum, Int64),
    nps_promoters  SimpleAggregateFunction(sum, Int64),
    nps_detractors SimpleAggregateFunction(sum, Int64),
    bot_n          SimpleAggregateFunction(sum, Int64),
    frt            SimpleAggregateFunction(sumMap, Tuple(Array(Float64), Array(Int64))),
    handoff        SimpleAggregateFunction(sumMap, Tuple(Array(Float64), Array(Int64))),
    conc           SimpleAggregateFunction(sumMap, Tuple(Array(Int64), Array(Int64)))
)
ENGINE = AggregatingMergeTree
ORDER BY (day, operator_id);

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
    sum(sign * toInt64(bot_n)) AS bot_n,
    sumMap(if(frt_v IS NULL, [], [assumeNotNull(frt_v)]), if(frt_v IS NULL, [], [toInt64(sign)])) AS frt,
    sumMap(if(handoff_v IS NULL, [], [assumeNotNull(handoff_v)]), if(handoff_v IS NULL, [], [toInt64(sign)])) AS handoff,
    sumMap(if(handled_v = 1, [conc_b, conc_e], []), if(handled_v = 1, [toInt64(sign), -toInt64(sign)], [])) AS conc
FROM
(
    -- the item columns under other names: the sums' aliases are the rollup's column names
    SELECT *, frt AS frt_v, handoff AS handoff_v, handled AS handled_v
    FROM rollup_items_operators
)
GROUP BY day, operator_id;
