-- KPIs by conversation channel: kpis.md "Service KPIs" and "Lost revenue
-- estimate", output key set `service`.
-- Readings: docs/kpi-readings.md S1-S10, L1-L3.
--
-- Parameters (server-side binding):
--   date_from, date_to    Date32         half-open period [date_from, date_to) of UTC dates
--   conversion_window_ms  Int64          conversion window after a contact (L2)
--   capture_window_ms     Int64          lead window after a conversation start (S7)
--   missed_after_ms       Int64          deadline after the last visitor message (S5)
--   now                   Nullable(DateTime64(3, 'UTC'))  "now" for never-closed
--                                        conversations; NULL = the warehouse's
--                                        high-water mark, max(raw_events.occurred_at) (S5)
--   sla_channels          Array(String)  channels with an SLA target ...
--   sla_seconds           Array(Float64) ... and their targets in seconds (S4)
--
-- Shape: every contact (conversation of a non-`call` channel, inbound call),
-- all time, is one item; items look up the leads and winning deals of their
-- person (a hash join on the contacts' identity keys of persons with a deal or
-- a lead only: their profiles, migration 0010) to flag contact capture and conversions
-- within the window (lost revenue), then are summed per channel with the survey responses. Contacts
-- started outside the period only create rows (S8). A contact whose identity
-- key has no person has no leads or deals.
--
-- Item columns: channel, conversations, frt_s, turn_sum, turn_n, sla_n, sla_ok,
--               missed, transferred, capture_base, offered, answered,
--               missed_calls, abandoned, wait_s, talk_s, other_contact,
--               bot_n, bot_kept, handoff (bots: contract v1.1 section 4, readings B1-B4)
SELECT
    channel,
    toInt64(if(channel = 'call', offered, conv_n)) AS conversations,
    frt_median AS frt_median_s,
    frt_p90 AS frt_p90_s,
    frt_mean AS frt_mean_s,
    turn_sum / nullIf(turn_n, 0) AS art_s,
    sla_ok / nullIf(sla_n, 0) AS sla_rate,
    if(channel IN ('call', '(none)'), NULL, toInt64(missed)) AS missed_conversations,
    if(channel IN ('call', '(none)'), NULL, transferred / nullIf(conv_n, 0)) AS transfer_rate,
    if(channel IN ('chat', 'messenger'), captured / nullIf(conv_n, 0), NULL) AS contact_capture_rate,
    if(channel = 'call', toInt64(offered), NULL) AS calls_offered,
    if(channel = 'call', answered / nullIf(offered, 0), NULL) AS answer_rate,
    if(channel = 'call', toInt64(missed_calls), NULL) AS missed_calls,
    if(channel = 'call', toInt64(abandoned), NULL) AS abandoned_calls,
    wait_mean AS wait_mean_s,
    wait_median AS wait_median_s,
    talk_mean AS talk_mean_s,
    csat_ok / nullIf(csat_n, 0) AS csat,
    100 * (toFloat64(nps_promoters) - toFloat64(nps_detractors)) / nullIf(nps_n, 0) AS nps,
    -- missed x r x v (L1-L3): null when r or v is undefined
    if(channel = '(none)', NULL,
       toFloat64(if(channel = 'call', missed_calls + abandoned, missed))
       * (other_converted / nullIf(other_n, 0))
       * if(empty(other_deals), NULL, arrayAvg(arrayMap(d -> d.2, other_deals)))) AS lost_revenue,
    -- bots and hand-over (contract v1.1 section 4, readings B1-B4): conversation channels only
    if(channel IN ('call', '(none)'), NULL, toInt64(bot_n)) AS bot_conversations,
    if(channel IN ('call', '(none)'), NULL, toInt64(bot_kept)) AS bot_contained,
    if(channel IN ('call', '(none)'), NULL, bot_kept / nullIf(bot_n, 0)) AS bot_containment_rate,
    handoff_median AS handoff_wait_median_s,
    handoff_p90 AS handoff_wait_p90_s
FROM
(
    SELECT
        channel,
        sum(conv_n) AS conv_n,
        -- one state for both quantiles (exact, linear interpolation as numpy); null without values
        quantilesExactInclusive(0.5, 0.9)(frt) AS frt_q,
        if(count(frt) = 0, NULL, frt_q[1]) AS frt_median,
        if(count(frt) = 0, NULL, frt_q[2]) AS frt_p90,
        avg(frt) AS frt_mean,
        sum(turn_sum) AS turn_sum,
        sum(turn_n) AS turn_n,
        sum(sla_n) AS sla_n,
        sum(sla_ok) AS sla_ok,
        sum(missed) AS missed,
        sum(transferred) AS transferred,
        sum(captured) AS captured,
        sum(offered) AS offered,
        sum(answered) AS answered,
        sum(missed_calls) AS missed_calls,
        sum(abandoned) AS abandoned,
        avg(wait) AS wait_mean,
        quantileExactInclusive(0.5)(wait) AS wait_median,
        avg(talk) AS talk_mean,
        sum(other_n) AS other_n,
        sum(other_converted) AS other_converted,
        groupUniqArrayArray(deals_found) AS other_deals,
        sum(csat_n) AS csat_n,
        sum(csat_ok) AS csat_ok,
        sum(nps_n) AS nps_n,
        sum(nps_promoters) AS nps_promoters,
        sum(nps_detractors) AS nps_detractors,
        sum(bot_n) AS bot_n,
        sum(bot_kept) AS bot_kept,
        quantilesExactInclusive(0.5, 0.9)(handoff) AS handoff_q,
        if(count(handoff) = 0, NULL, handoff_q[1]) AS handoff_median,
        if(count(handoff) = 0, NULL, handoff_q[2]) AS handoff_p90
    FROM
    (
        SELECT
            i.ch AS channel,
            i.conv_n AS conv_n,
            i.frt AS frt,
            i.turn_sum AS turn_sum,
            i.turn_n AS turn_n,
            i.sla_n AS sla_n,
            i.sla_ok AS sla_ok,
            i.missed AS missed,
            i.transferred AS transferred,
            toUInt64(i.capture_base AND arrayExists(l -> l >= i.at AND l <= addMilliseconds(i.at, {capture_window_ms:Int64}), k.lead_times)) AS captured,
            i.offered AS offered,
            i.answered AS answered,
            i.missed_calls AS missed_calls,
            i.abandoned AS abandoned,
            i.wait AS wait,
            i.talk AS talk,
            i.other AS other_n,
            toUInt64(i.other AND arrayExists(d -> d.1 >= i.at AND d.1 <= addMilliseconds(i.at, {conversion_window_ms:Int64}), k.won))
                AS other_converted,
            if(i.other = 1,
               arrayMap(d -> (d.2, d.3),
                        arrayFilter(d -> d.1 >= i.at AND d.1 <= addMilliseconds(i.at, {conversion_window_ms:Int64}), k.won)),
               CAST([] AS Array(Tuple(String, Float64)))) AS deals_found,
            toUInt64(0) AS csat_n,
            toUInt64(0) AS csat_ok,
            toUInt64(0) AS nps_n,
            toUInt64(0) AS nps_promoters,
            toUInt64(0) AS nps_detractors,
            i.bot_n AS bot_n,
            i.bot_kept AS bot_kept,
            i.handoff AS handoff
        FROM
        (
            -- conversations (a `conversation_started` of channel `call` is no service contact, S8)
            SELECT
                key_h,  -- hashes of identity_key (migrations 0011, 0012)
                key_n,
                start AS at,
                toString(channel) AS ch,
                toUInt64(live) AS conv_n,
                if(live = 1, frt_s, NULL) AS frt,
                if(live = 1, turn_sum_s, 0.) AS turn_sum,
                toUInt64(if(live = 1, turn_count, 0)) AS turn_n,
                toUInt64(live AND sla_base AND sla_idx > 0) AS sla_n,
                toUInt64(live AND sla_base AND sla_idx > 0
                         AND ifNull(frt_s <= arrayElement({sla_seconds:Array(Float64)}, sla_idx), 0)) AS sla_ok,
                toUInt64(live AND is_missed) AS missed,
                toUInt64(live AND notEmpty(transfers)) AS transferred,
                toUInt64(live AND channel IN ('chat', 'messenger')) AS capture_base,
                toUInt64(0) AS offered,
                toUInt64(0) AS answered,
                toUInt64(0) AS missed_calls,
                toUInt64(0) AS abandoned,
                CAST(NULL AS Nullable(Float64)) AS wait,
                CAST(NULL AS Nullable(Float64)) AS talk,
                toUInt64(live AND NOT is_missed) AS other,
                toUInt64(live AND bot_base) AS bot_n,
                toUInt64(live AND bot_base AND closed_at IS NOT NULL AND first_operator_at IS NULL AND NOT is_missed)
                    AS bot_kept,
                if(live AND bot_base AND handoff_bot_at IS NOT NULL,
                   (toUnixTimestamp64Milli(assumeNotNull(first_operator_at))
                    - toUnixTimestamp64Milli(assumeNotNull(handoff_bot_at))) / 1000, NULL) AS handoff
            FROM
            (
                SELECT
                    key_h,  -- hashes of identity_key (migrations 0011, 0012)
                    key_n,
                    channel,
                    assumeNotNull(started_at) AS start,
                    toUInt8(toDate32(start) >= {date_from:Date32} AND toDate32(start) < {date_to:Date32}) AS live,
                    frt_s,
                    turn_sum_s,  -- sum and count of the answered turns (migration 0011)
                    turn_count,
                    transfers,
                    indexOf({sla_channels:Array(String)}, toString(channel)) AS sla_idx,
                    toUInt8(initiated_by = 'visitor' AND visitor_messages > 0) AS sla_base,
                    ifNull(closed_at, addMilliseconds(last_visitor_at, {missed_after_ms:Int64})) AS deadline,
                    -- S5: no operator or bot message at or before the deadline, once the deadline has passed
                    toUInt8(ifNull(
                        sla_base
                        AND (first_any_reply_at IS NULL OR first_any_reply_at > deadline)
                        AND (closed_at IS NOT NULL
                             OR deadline <= coalesce({now:Nullable(DateTime64(3, 'UTC'))},
                                                     (SELECT max(occurred_at) FROM raw_events))),
                        0)) AS is_missed,
                    -- visitor-initiated with a bot message (B1); the hand-over columns (migration 0028)
                    toUInt8(initiated_by = 'visitor' AND bot_messages > 0) AS bot_base,
                    closed_at,
                    first_operator_at,
                    handoff_bot_at
                FROM conversations
                WHERE channel != 'call'
            )

            UNION ALL

            -- inbound calls (S9)
            SELECT
                key_h,  -- hashes of identity_key (migrations 0011, 0012)
                key_n,
                started_at,
                'call',
                toUInt64(0), CAST(NULL AS Nullable(Float64)), toFloat64(0),
                toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0),
                toUInt64(live),
                toUInt64(live AND outcome = 'answered'),
                toUInt64(live AND outcome = 'missed'),
                toUInt64(live AND outcome = 'abandoned'),
                if(live AND outcome = 'answered' AND answered_at IS NOT NULL,
                   (toUnixTimestamp64Milli(assumeNotNull(answered_at)) - toUnixTimestamp64Milli(started_at)) / 1000, NULL),
                if(live AND outcome = 'answered' AND answered_at IS NOT NULL,
                   (toUnixTimestamp64Milli(ended_at) - toUnixTimestamp64Milli(assumeNotNull(answered_at))) / 1000, NULL),
                toUInt64(live AND outcome NOT IN ('missed', 'abandoned')),
                toUInt64(0), toUInt64(0), CAST(NULL AS Nullable(Float64))
            FROM
            (
                SELECT
                    key_h, key_n, toString(outcome) AS outcome, started_at, answered_at, ended_at,
                    toUInt8(toDate32(started_at) >= {date_from:Date32} AND toDate32(started_at) < {date_to:Date32}) AS live
                FROM call_winners
                WHERE direction = 'inbound'
            )
        ) AS i
        LEFT JOIN
        -- every identity key that a contact carries, of a person with a winning deal or a
        -- lead -> the person's deals (won_at, deal_id, revenue) and lead times (view, migration 0010)
        profile_contact_keys AS k ON k.k_key_h = i.key_h AND k.k_key_n = i.key_n

        UNION ALL

        -- survey responses (S10): the channel of their conversation, else `call`
        -- for a known call (either direction), else (none)
        SELECT
            channel,
            toUInt64(0), CAST(NULL AS Nullable(Float64)), toFloat64(0), toUInt64(0), toUInt64(0), toUInt64(0),
            toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0),
            CAST(NULL AS Nullable(Float64)), CAST(NULL AS Nullable(Float64)),
            toUInt64(0), toUInt64(0), CAST([] AS Array(Tuple(String, Float64))),
            toUInt64(live AND survey = 'csat'),
            toUInt64(live AND survey = 'csat' AND score >= 4),
            toUInt64(live AND survey = 'nps'),
            toUInt64(live AND survey = 'nps' AND score >= 9),
            toUInt64(live AND survey = 'nps' AND score <= 6),
            toUInt64(0), toUInt64(0), CAST(NULL AS Nullable(Float64))
        FROM
        (
            SELECT
                multiIf(cv.conversation_id != '', cv.channel, cl.call_id != '', 'call', '(none)') AS channel,
                toString(s.survey) AS survey,
                s.score AS score,
                toDate32(s.responded_at) >= {date_from:Date32} AND toDate32(s.responded_at) < {date_to:Date32} AS live
            FROM surveys AS s FINAL
            LEFT JOIN
            (
                SELECT conversation_id, toString(channel) AS channel
                FROM conversations
                WHERE conversation_id IN (SELECT conversation_id FROM surveys WHERE conversation_id != '')
            ) AS cv ON cv.conversation_id = s.conversation_id
            LEFT JOIN
            (
                SELECT call_id
                FROM call_winners
                WHERE call_id IN (SELECT call_id FROM surveys WHERE call_id != '')
            ) AS cl ON cl.call_id = s.call_id
        )
    )
    GROUP BY channel
)
ORDER BY channel
