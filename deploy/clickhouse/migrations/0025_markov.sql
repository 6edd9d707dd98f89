-- 0025: the `markov` attribution model (contract v1.1 section 1, issue 16).
--
-- Removal effects are global (every journey changes every channel's effect), so
-- markov credits are not stored per conversion: they are derived when asked from
-- the journeys, which the attribution stage keeps current as it recomputes people:
--   * converting paths: the eligible touches of each conversion, in order, as every
--     stored model's row in attribution_credits lists them (the `linear` row is read);
--   * non-converting paths: `journeys`, one row per person the stage recomputed,
--     holding the touches of a person without a conversion (empty otherwise).
-- Views: markov_paths (one row per path, consecutive repeats collapsed),
-- markov_transitions (counts), markov_chain (P(conversion), removal effects; the
-- absorbing chain solved exactly by Gauss-Jordan elimination in SQL), markov_credits
-- (per-conversion credits given the removal effects), credits_<model> (one model's
-- credits, what the KPI queries read) and model_credits (every model's).
-- Readings: docs/kpi-readings.md "Markov".
-- Frozen: later changes are new migrations.

-- The touches of a person without a conversion, ordered by (touch time, event_id),
-- those that can still fall in a lookback window ending at "now" (a touch is in the
-- window while now <= touch_at + lookback_ms, the stage's lookback). A person with a
-- conversion, without touches, or absorbed by a merge has empty arrays.
CREATE TABLE IF NOT EXISTS journeys
(
    person_id   String,
    version     UInt64,
    lookback_ms UInt64,
    channels    Array(String),
    touch_at    Array(DateTime64(3, 'UTC'))
)
ENGINE = ReplacingMergeTree(version)
ORDER BY person_id;

-- One row per path: converting = 1 (a conversion with eligible touches) or 0 (a person
-- with touches in the window ending at the newest occurred_at and no conversion).
-- `path` is the channels in order with consecutive repeats collapsed.
CREATE VIEW IF NOT EXISTS markov_paths AS
SELECT converting, arrayFilter((c, i) -> i = 1 OR c != steps[i - 1], steps, arrayEnumerate(steps)) AS path
FROM
(
    SELECT toUInt8(1) AS converting, channels AS steps
    FROM attribution_credits FINAL
    WHERE model = 'linear' AND touch_event_ids != ['']
    UNION ALL
    SELECT toUInt8(0), arrayFilter((c, t) -> addMilliseconds(t, lookback_ms) >= (SELECT max(occurred_at) FROM raw_events),
                                   channels, touch_at)
    FROM journeys FINAL
    WHERE notEmpty(channels)
)
WHERE notEmpty(steps);

-- Transition counts over all paths: (start) -> c1 -> ... -> cn -> (conversion) | (null).
CREATE VIEW IF NOT EXISTS markov_transitions AS
SELECT from_state, to_state, count() AS n
FROM
(
    SELECT arrayPushFront(path, '(start)') AS f,
           arrayPushBack(path, if(converting = 1, '(conversion)', '(null)')) AS t
    FROM markov_paths
)
ARRAY JOIN f AS from_state, t AS to_state
GROUP BY from_state, to_state;

-- One row: the number of paths, P(conversion) from (start), the channels (sorted) and
-- each one's removal effect RE(c) = 1 - P_c(conversion) / P(conversion), where P_c
-- redirects every transition into c to (null). States 1..m: (start), then the channels.
-- x = (I - Q)^-1 R (absorption in (conversion)) by Gauss-Jordan elimination over the
-- augmented matrix [I - Q | R]: I - Q of an absorbing chain is a nonsingular M-matrix,
-- so no pivot is zero and no row exchange is needed. P(conversion) = x[1].
CREATE VIEW IF NOT EXISTS markov_chain AS
WITH
    arrayPushFront(channels, '(start)') AS states,
    length(states) AS m,
    arrayMap(i -> arrayMap(j -> counts[concat(states[i], '\t', states[j])] / outs[states[i]], range(1, m + 1)),
             range(1, m + 1)) AS q,
    arrayMap(i -> counts[concat(states[i], '\t(conversion)')] / outs[states[i]], range(1, m + 1)) AS r,
    -- absorbed[1]: P(conversion) (k = 0 removes nothing); absorbed[i + 1]: P(conversion) with
    -- every transition into state k = i + 1 (channels[i]) sent to (null)
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
    FROM markov_transitions
);

-- markov credits of every conversion: 1 split among the distinct channels of its path in
-- proportion to their removal effects (all zero: equally), a channel's share split
-- equally among its touches; no eligible touch: 1 to (none), as the linear row holds.
CREATE VIEW IF NOT EXISTS markov_credits AS
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
            FROM markov_chain
        ) AS e
    )
);

-- Credits of one model, the source the KPI queries read (FROM {credits:Identifier}, the
-- parameter credits = 'credits_' || model): a view per model keeps the markov chain out of
-- the other models' queries (a union filtered by model still solved the chain).
CREATE VIEW IF NOT EXISTS credits_first_touch AS SELECT * FROM attribution_credits FINAL WHERE model = 'first_touch';
CREATE VIEW IF NOT EXISTS credits_last_touch AS SELECT * FROM attribution_credits FINAL WHERE model = 'last_touch';
CREATE VIEW IF NOT EXISTS credits_linear AS SELECT * FROM attribution_credits FINAL WHERE model = 'linear';
CREATE VIEW IF NOT EXISTS credits_time_decay AS SELECT * FROM attribution_credits FINAL WHERE model = 'time_decay';
CREATE VIEW IF NOT EXISTS credits_position_based AS
SELECT * FROM attribution_credits FINAL WHERE model = 'position_based';
CREATE VIEW IF NOT EXISTS credits_markov AS SELECT * FROM markov_credits;

-- Credits of every model at once (the models side by side).
CREATE VIEW IF NOT EXISTS model_credits AS
SELECT deal_id, toString(model) AS model, version, person_id, won_at, revenue, touch_event_ids, touch_kinds,
       channels, campaigns, operators, credits
FROM attribution_credits FINAL
UNION ALL
SELECT deal_id, model, version, person_id, won_at, revenue, touch_event_ids, touch_kinds, channels, campaigns,
       operators, credits
FROM markov_credits;
