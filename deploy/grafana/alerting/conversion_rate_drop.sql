-- ConversionRateDrop (warehouse): the conversion rate of each marketing channel over the last
-- window, against the same window of the previous three weeks, from the warehouse facts by event
-- time. The Grafana alert rule of leadflow-alerts.yaml (query A) runs this text as is and fires
-- when `value` < 0.5; tests/test_grafana_alert.py runs it on the engine.
--
-- A lead counts in the window of its lead_at; it counts as converted in the window of its first
-- conversion: the first deal won by its person within 90 days after the lead (kpis.md
-- converted_leads, by the lead's channel). Windows end `settle_hours` before now, so events
-- that arrive a little late (CRM deals) are in.
--
-- One row per channel with enough volume (at least `min_expected_conversions` expected at the
-- baseline rate, a baseline of at least `min_baseline_conversions`), columns:
--   channel  String   the alert's label
--   value    Float64  conversion rate / baseline rate (1 = usual); while the shortfall is within
--                     `noise_sigmas` standard deviations of the expected count (Poisson) it is
--                     held at 0.5 or above: noise does not fire
WITH
    toUnixTimestamp64Milli(now64(3, 'UTC')) AS anchor_ms,
    6 AS window_hours,
    1 AS settle_hours,
    10 AS min_expected_conversions,
    10 AS min_baseline_conversions,
    90 AS conversion_days,
    3 AS noise_sigmas,
    604800000 AS week_ms,
    window_hours * 3600000 AS window_ms,
    anchor_ms - settle_hours * 3600000 AS end_ms,
    end_ms - 3 * week_ms - window_ms - conversion_days * 86400000 AS horizon_ms
SELECT
    channel,
    toFloat64(if(expected - converted_now > noise_sigmas * sqrt(expected),
                 converted_now / expected,
                 greatest(converted_now / expected, 0.5))) AS value
FROM
(
    SELECT
        channel,
        countIf(kind = 'lead' AND week = 0) AS leads_now,
        countIf(kind = 'converted' AND week = 0) AS converted_now,
        countIf(kind = 'lead' AND week > 0) AS leads_before,
        countIf(kind = 'converted' AND week > 0) AS converted_before,
        leads_now * converted_before / leads_before AS expected
    FROM
    (
        -- which window (0 = current, 1..3 = weeks before) a time falls in, if any
        SELECT
            channel,
            kind,
            end_ms - at_ms AS before_end_ms,
            intDiv(before_end_ms - 1, week_ms) AS week
        FROM
        (
            SELECT channel, kind, at_ms
            FROM
            (
                SELECT
                    channel,
                    toUnixTimestamp64Milli(lead_at) AS lead_ms,
                    arrayMin(arrayFilter(w -> w >= lead_ms AND w <= lead_ms + conversion_days * 86400000,
                                         won_ms)) AS converted_ms,
                    [('lead', lead_ms), ('converted', converted_ms)] AS points
                FROM
                (
                    SELECT l.channel AS channel, l.lead_at AS lead_at, l.person AS person
                    FROM
                    (
                        SELECT l.channel, l.lead_at,
                               coalesce(nullIf(p.person_id, ''), concat('?', l.identity_key)) AS person
                        FROM lead_winners AS l
                        LEFT JOIN persons AS p ON p.identity_key = l.identity_key
                        WHERE toUnixTimestamp64Milli(l.lead_at) >= horizon_ms
                    ) AS l
                ) AS leads
                LEFT JOIN
                (
                    SELECT person, groupArray(toUnixTimestamp64Milli(won_at)) AS won_ms
                    FROM
                    (
                        SELECT d.won_at,
                               coalesce(nullIf(p.person_id, ''), concat('?', d.identity_key)) AS person
                        FROM deal_winners AS d
                        LEFT JOIN persons AS p ON p.identity_key = d.identity_key
                        WHERE toUnixTimestamp64Milli(d.won_at) >= horizon_ms
                    )
                    GROUP BY person
                ) AS deals ON deals.person = leads.person
            )
            ARRAY JOIN points.1 AS kind, points.2 AS at_ms
            WHERE at_ms > 0
        )
        WHERE before_end_ms > 0 AND week <= 3 AND before_end_ms - week * week_ms <= window_ms
    )
    GROUP BY channel
)
WHERE leads_now > 0
  AND leads_before > 0
  AND expected > 0
  AND expected >= min_expected_conversions
  AND converted_before >= min_baseline_conversions
ORDER BY channel
