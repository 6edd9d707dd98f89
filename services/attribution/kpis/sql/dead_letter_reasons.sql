-- Dead letters grouped by reason: the kind of error, the event type and the
-- fields that failed, with a count and one example message. Shared by the
-- terminal report, the HTML report and the "Pipeline health" dashboard
-- (services/attribution/kpis/extra.py runs it). Not filtered by period: dead
-- letters are dated by their rejection (wall clock) and expire after
-- deadletter_retention_days.
--
-- No parameters.
SELECT
    toString(error_kind) AS error_kind,
    if(event_type = '', '(unknown)', event_type) AS event_type,
    arrayStringConcat(arrayFilter(p -> p != '', arrayMap(e -> e.1, errors)), ', ') AS fields,
    toInt64(count()) AS dead_letters,
    any(arrayStringConcat(arrayMap(e -> if(e.1 = '', e.2, concat(e.1, ': ', e.2)), errors), '; ')) AS example,
    max(rejected_at) AS last_rejected_at
FROM dead_letters FINAL
GROUP BY error_kind, event_type, fields
ORDER BY dead_letters DESC, error_kind, event_type, fields
