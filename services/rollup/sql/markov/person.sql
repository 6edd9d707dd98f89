-- Items of persons (person_id) for the markov chain (migration 0041): the journey of a person
-- without a conversion (journeys, migration 0025: touches t_1..t_k in order, channels c_i,
-- lookback L). At a now N the path is the touches with t + L >= N (a suffix), repeats collapsed,
-- then (null); each transition is a point (at_ms = h, w) counting w while N <= h, h_i = t_i + L:
--   (start) -> c_i        +1 at h_i, -1 at h_(i-1)     (the path starts at touch i)
--   c_(j-1) -> c_j        +1 at h_(j-1), c_j != c_(j-1) (touch j-1 is still kept)
--   c_k -> (null)         +1 at h_k                     (the path is not empty)
SELECT
    person_id AS id,
    point.1 AS from_state,
    point.2 AS to_state,
    point.3 AS at_ms,
    point.4 AS w
FROM
(
    SELECT person_id, channels AS c,
           arrayMap(t -> toUnixTimestamp64Milli(t) + toInt64(lookback_ms), touch_at) AS h
    FROM journeys FINAL
    WHERE person_id IN (SELECT key FROM rollup_ids) AND notEmpty(channels)
)
ARRAY JOIN arrayConcat(
    arrayMap(i -> ('(start)', c[i], h[i], toInt8(1)), arrayEnumerate(c)),
    arrayMap(i -> ('(start)', c[i], h[i - 1], toInt8(-1)), range(2, length(c) + 1)),
    arrayMap(j -> (c[j - 1], c[j], h[j - 1], toInt8(1)), arrayFilter(j -> c[j] != c[j - 1], range(2, length(c) + 1))),
    [(c[length(c)], '(null)', h[length(c)], toInt8(1))]
) AS point
