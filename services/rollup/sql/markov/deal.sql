-- Items of deals (deal_id) for the markov chain (migration 0041): the converting path, the
-- eligible touches' channels the linear row lists with consecutive repeats collapsed (as
-- markov_paths, migration 0025), as transitions (start) -> c1 -> ... -> cn -> (conversion), each
-- counting at every now (+1 at the end of time). No eligible touch: no path.
SELECT
    deal_id AS id,
    step.1 AS from_state,
    step.2 AS to_state,
    toInt64(9223372036854775807) AS at_ms,
    toInt8(1) AS w
FROM
(
    SELECT deal_id, arrayFilter((c, i) -> i = 1 OR c != channels[i - 1], channels, arrayEnumerate(channels)) AS path
    FROM attribution_credits FINAL
    WHERE deal_id IN (SELECT key FROM rollup_ids) AND model = 'linear' AND touch_event_ids != [''] AND notEmpty(channels)
)
ARRAY JOIN arrayZip(arrayPushFront(path, '(start)'), arrayPushBack(path, '(conversion)')) AS step
