-- 0041: the markov chain's transition counts as rollups (issue 18). Reading them from every
-- journey cost ~500 ms at 10M events (3.4M non-converting journeys re-collapsed into paths and
-- exploded into 8M transitions per query); with rollups on, the chain reads counts instead.
--
-- Items (services/rollup/sql/markov/): signed *points* (from_state, to_state, at_ms, w): a
-- transition counts w at a query whose now (the newest occurred_at, in ms) is at or before
-- at_ms, so the count of a transition at now N is the sum of w over its points with
-- at_ms >= N.
--   deal    a converting path (the linear row's eligible touches, repeats collapsed):
--           each transition +1 at the end of time (it never leaves the chain)
--   person  a journey without a conversion, touches t_1..t_k with lookback L (migration 0025):
--           the path at N is the suffix of touches with t + L >= N, so
--           (start) -> c_i counts while t_(i-1) + L < N <= t_i + L: +1 at t_i + L, -1 at t_(i-1) + L;
--           c_(j-1) -> c_j (a change of channel) while touch j-1 is kept: +1 at t_(j-1) + L;
--           c_k -> (null) while the path is not empty: +1 at t_k + L.
-- Rollups: `rollup_markov`, the points summed per clock hour of at_ms and transition, and
-- `rollup_markov_points`, the points themselves: a query sums the hours after now's hour and
-- the points of now's hour at or after now. Expired hours are never read, so a query costs the
-- transitions x the hours of one lookback window, however long the history.
-- Frozen: later changes are new migrations.

CREATE TABLE IF NOT EXISTS rollup_items_markov
(
    entity     String,
    sign       Int8,
    from_state LowCardinality(String),
    to_state   LowCardinality(String),
    at_ms      Int64,
    w          Int8
)
ENGINE = MergeTree
ORDER BY entity
SETTINGS cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

CREATE TABLE IF NOT EXISTS rollup_markov
(
    hour       Int64,
    from_state LowCardinality(String),
    to_state   LowCardinality(String),
    n          SimpleAggregateFunction(sum, Int64)
)
ENGINE = AggregatingMergeTree
ORDER BY (hour, from_state, to_state)
SETTINGS cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

CREATE TABLE IF NOT EXISTS rollup_markov_points
(
    hour       Int64,
    at_ms      Int64,
    from_state LowCardinality(String),
    to_state   LowCardinality(String),
    n          SimpleAggregateFunction(sum, Int64)
)
ENGINE = AggregatingMergeTree
ORDER BY (hour, at_ms, from_state, to_state)
SETTINGS cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_markov_mv TO rollup_markov AS
SELECT intDiv(at_ms, 3600000) AS hour, from_state, to_state, sum(toInt64(sign) * w) AS n
FROM rollup_items_markov
GROUP BY hour, from_state, to_state;

CREATE MATERIALIZED VIEW IF NOT EXISTS rollup_markov_points_mv TO rollup_markov_points AS
SELECT intDiv(at_ms, 3600000) AS hour, at_ms, from_state, to_state, sum(toInt64(sign) * w) AS n
FROM rollup_items_markov
GROUP BY hour, at_ms, from_state, to_state;

-- The transition counts at now (the newest occurred_at), as markov_transitions (0025) gives them.
CREATE VIEW IF NOT EXISTS markov_transitions_rollup AS
WITH (SELECT toUnixTimestamp64Milli(max(occurred_at)) FROM raw_events) AS now_ms
SELECT from_state, to_state, toUInt64(total) AS n
FROM
(
    SELECT from_state, to_state, sum(points) AS total
    FROM
    (
        SELECT CAST(from_state AS String) AS from_state, CAST(to_state AS String) AS to_state, n AS points
        FROM rollup_markov
        WHERE hour > intDiv(now_ms, 3600000)
        UNION ALL
        SELECT CAST(from_state AS String), CAST(to_state AS String), n
        FROM rollup_markov_points
        WHERE hour = intDiv(now_ms, 3600000) AND at_ms >= now_ms
    )
    GROUP BY from_state, to_state
)
WHERE total > 0;

-- The chain and the markov credits over either source, one definition each (0025's bodies, which
-- read markov_transitions): `rollups` = 0 the journeys and credits themselves, 1 the rollups.
-- The branch not asked for is a constant-false filter, which ClickHouse does not read.
CREATE VIEW IF NOT EXISTS markov_chain_of AS
WITH
    arrayPushFront(channels, '(start)') AS states,
    length(states) AS m,
    arrayMap(i -> arrayMap(j -> counts[concat(states[i], '\t', states[j])] / outs[states[i]], range(1, m + 1)),
             range(1, m + 1)) AS q,
    arrayMap(i -> counts[concat(states[i], '\t(conversion)')] / outs[states[i]], range(1, m + 1)) AS r,
    arrayMap(k -> arrayFold(
            (a, p) -> arrayMap((row, i) -> if(i = p, arrayMap(v -> v / a[p][p], a[p]),
                                              arrayMap((v, w) -> v - row[p] * w / a[p][p], row, a[p])),
                               a, arrayEnumerate(a)),
            range(1, m + 1),
            arrayMap(i -> arrayPushBack(arrayMap(j -> if(i = j, 1., 0.) - if(j = k, 0., q[i][j]), range(1, m + 1)),
                                        r[i]), range(1, m + 1)))[1][m + 1],
             arrayPushFront(range(2, m + 1), 0)) AS absorbed
SELECT
    paths,
    if(paths = 0, NULL, absorbed[1]) AS p_conversion,
    channels,
    arrayMap(i -> if(p_conversion > 0, greatest(0., 1 - absorbed[i + 1] / p_conversion), NULL),
             range(1, length(channels) + 1)) AS removal_effects
FROM
(
    SELECT
        arraySort(groupUniqArrayIf(from_state, from_state != '(start)')) AS channels,
        CAST((groupArray(concat(from_state, '\t', to_state)), groupArray(toFloat64(n))) AS Map(String, Float64)) AS counts,
        CAST(sumMap([from_state], [toFloat64(n)]) AS Map(String, Float64)) AS outs,
        toUInt64(sumIf(n, from_state = '(start)')) AS paths
    FROM
    (
        SELECT from_state, to_state, n FROM markov_transitions WHERE {rollups:UInt8} = 0
        UNION ALL
        SELECT from_state, to_state, n FROM markov_transitions_rollup WHERE {rollups:UInt8} = 1
    )
);

CREATE VIEW IF NOT EXISTS markov_credits_of AS
SELECT deal_id, 'markov' AS model, version, person_id, won_at, revenue, touch_event_ids, touch_kinds, channels,
       campaigns, operators,
       arrayMap(c -> if(total > 0, effect[c] / total, 1 / length(arrayDistinct(channels))) / countEqual(channels, c),
                channels) AS credits
FROM
(
    SELECT *, arraySum(arrayMap(c -> effect[c], arrayDistinct(channels))) AS total
    FROM
    (
        SELECT a.*, e.effect AS effect
        FROM (SELECT * FROM attribution_credits FINAL WHERE model = 'linear') AS a
        CROSS JOIN
        (
            SELECT CAST((channels, arrayMap(x -> ifNull(x, 0.), removal_effects)) AS Map(String, Float64)) AS effect
            FROM markov_chain_of(rollups = {rollups:UInt8})
        ) AS e
    )
);

-- The facts path keeps its names (what `--source facts` and rollups off read) ...
CREATE OR REPLACE VIEW markov_chain AS SELECT * FROM markov_chain_of(rollups = 0);
CREATE OR REPLACE VIEW markov_credits AS SELECT * FROM markov_credits_of(rollups = 0);
-- ... and the rollups' (the chain `leadflow kpis markov`, the report and the dashboards read when
-- the rollups can answer; the markov rows of the channels and campaigns rollups).
CREATE VIEW IF NOT EXISTS markov_chain_rollup AS SELECT * FROM markov_chain_of(rollups = 1);

CREATE OR REPLACE VIEW rollup_channels_markov AS
SELECT day, CAST(channel AS String) AS channel, CAST(model AS String) AS model, toInt64(n) AS n, toDecimal128(spend, 6) AS spend, toInt64(spend_rows) AS spend_rows, toInt64(leads) AS leads, toInt64(converted) AS converted, toFloat64(conversions) AS conversions, toFloat64(revenue) AS revenue, toInt64(customers) AS customers, toDecimal128(ltv, 6) AS ltv, toInt64(ltv_n) AS ltv_n
FROM rollup_channels WHERE model = ''
UNION ALL
SELECT toDate32(won_at) AS day, credit_channel AS channel, 'markov' AS model, toInt64(count()) AS n,
       toDecimal128(0, 6) AS spend, toInt64(0) AS spend_rows, toInt64(0) AS leads, toInt64(0) AS converted,
       sum(credit) AS conversions, sum(credit * toFloat64(revenue)) AS revenue, toInt64(0) AS customers,
       toDecimal128(0, 6) AS ltv, toInt64(0) AS ltv_n
FROM markov_credits_of(rollups = 1)
ARRAY JOIN channels AS credit_channel, credits AS credit
GROUP BY day, channel;

CREATE OR REPLACE VIEW rollup_campaigns_markov AS
SELECT day, campaign_id, CAST(model AS String) AS model, toInt64(n) AS n, toDecimal128(spend, 6) AS spend, toInt64(spend_rows) AS spend_rows, toInt64(leads) AS leads, toInt64(converted) AS converted, toFloat64(conversions) AS conversions, toFloat64(revenue) AS revenue
FROM rollup_campaigns WHERE model = ''
UNION ALL
SELECT toDate32(won_at) AS day, credit_campaign AS campaign_id, 'markov' AS model, toInt64(count()) AS n,
       toDecimal128(0, 6) AS spend, toInt64(0) AS spend_rows, toInt64(0) AS leads, toInt64(0) AS converted,
       sum(credit) AS conversions, sum(credit * toFloat64(revenue)) AS revenue
FROM markov_credits_of(rollups = 1)
ARRAY JOIN campaigns AS credit_campaign, credits AS credit
WHERE credit_campaign != ''
GROUP BY day, campaign_id;
