-- KPIs by operator: kpis.md "Service KPIs", output key set `operators`.
-- Readings: docs/kpi-readings.md S1-S4, S10, O1-O5.
--
-- Parameters (server-side binding):
--   date_from, date_to    Date32         half-open period [date_from, date_to) of UTC dates
--   conversion_window_ms  Int64          operator_conversion_rate window after the start (O4)
--   sla_channels          Array(String)  channels with an SLA target ...
--   sla_seconds           Array(Float64) ... and their targets in seconds (S4)
--
-- Shape: each conversation (all time) becomes one row per operator who sent a
-- message in it (handled, messages, frt, sla, art, concurrency interval), each
-- inbound answered call one row for its operator; these handled rows look up the
-- winning deals of their person (a hash join on the identity keys that contacts
-- carry, of converting persons only: their profiles, migration 0010) to flag
-- conversions within the window. Transfers (credited to from_operator_id) and
-- survey responses add rows of their own; everything is summed per operator.
-- Rows of conversations and calls started outside the period only create
-- operator rows (O1).
--
SELECT
    op AS operator_id,
    toInt64(handled) AS conversations,
    frt_median AS frt_median_s,
    frt_p90 AS frt_p90_s,
    frt_mean AS frt_mean_s,
    art_sum / nullIf(art_n, 0) AS art_s,
    sla_ok / nullIf(sla_n, 0) AS sla_rate,
    toInt64(transfer_n) AS transfers,
    templated / nullIf(messages, 0) AS template_share,
    csat_ok / nullIf(csat_n, 0) AS csat,
    100 * (toFloat64(nps_promoters) - toFloat64(nps_detractors)) / nullIf(nps_n, 0) AS nps,
    converted / nullIf(handled, 0) AS operator_conversion_rate,
    toInt64(max_conc) AS max_concurrency,
    -- bots (contract v1.1 section 4, readings B1-B4): the bot conversations handed over to the operator
    toInt64(bot_n) AS bot_conversations,
    CAST(NULL AS Nullable(Int64)) AS bot_contained,
    CAST(NULL AS Nullable(Float64)) AS bot_containment_rate,
    handoff_median AS handoff_wait_median_s,
    handoff_p90 AS handoff_wait_p90_s
FROM
(
    SELECT
        op,
        sum(is_handled) AS handled,
        sum(converted) AS converted,
        sum(messages) AS messages,
        sum(templated) AS templated,
        sum(transfer_n) AS transfer_n,
        -- one state for both quantiles (exact, linear interpolation as numpy); null without values
        quantilesExactInclusive(0.5, 0.9)(frt) AS frt_q,
        if(count(frt) = 0, NULL, frt_q[1]) AS frt_median,
        if(count(frt) = 0, NULL, frt_q[2]) AS frt_p90,
        avg(frt) AS frt_mean,
        sum(sla_n) AS sla_n,
        sum(sla_ok) AS sla_ok,
        sum(art_sum) AS art_sum,
        sum(art_n) AS art_n,
        -- O5: the most intervals open at one instant. Each end is one Int64, ms * 4 + order
        -- (start 1; end 0, or 2 for an empty interval), so that at one instant the ends of
        -- non-empty intervals come before the starts and those of empty ones after them
        maxIntersectionsIf(toUnixTimestamp64Milli(b) * 4 + 1, toUnixTimestamp64Milli(e) * 4 + if(e = b, 2, 0),
                           is_handled = 1) AS max_conc,
        sum(csat_n) AS csat_n,
        sum(csat_ok) AS csat_ok,
        sum(nps_n) AS nps_n,
        sum(nps_promoters) AS nps_promoters,
        sum(nps_detractors) AS nps_detractors,
        sum(bot_n) AS bot_n,
        quantilesExactInclusive(0.5, 0.9)(handoff) AS handoff_q,
        if(count(handoff) = 0, NULL, handoff_q[1]) AS handoff_median,
        if(count(handoff) = 0, NULL, handoff_q[2]) AS handoff_p90
    FROM
    (
        -- handled items: one per operator who sent a message in a conversation, and one per
        -- inbound answered call; converted when the item's person won a deal within the window
        SELECT
            h.op AS op,
            h.live_n AS is_handled,
            h.live_n * toUInt64(arrayExists(w -> w >= h.at AND w <= addMilliseconds(h.at, {conversion_window_ms:Int64}), k.won)) AS converted,
            h.messages AS messages,
            h.templated AS templated,
            toUInt64(0) AS transfer_n,
            h.frt AS frt,
            h.sla_n AS sla_n,
            h.sla_ok AS sla_ok,
            h.art_sum AS art_sum,
            h.art_n AS art_n,
            h.b AS b,
            h.e AS e,
            toUInt64(0) AS csat_n,
            toUInt64(0) AS csat_ok,
            toUInt64(0) AS nps_n,
            toUInt64(0) AS nps_promoters,
            toUInt64(0) AS nps_detractors,
            h.bot_n AS bot_n,
            h.handoff AS handoff
        FROM
        (
            -- conversations: a row per operator who sent a message (ARRAY JOIN drops conversations without)
            SELECT
                key_h,  -- hashes of identity_key (migrations 0011, 0012)
                key_n,
                start AS at,
                o.1 AS op,
                toUInt64(live) AS live_n,
                toUInt64(if(live, o.2, 0)) AS messages,
                toUInt64(if(live, o.3, 0)) AS templated,
                if(live AND o.1 = first_reply_operator, frt_s, NULL) AS frt,
                toUInt64(live AND o.1 = first_reply_operator AND frt_s IS NOT NULL AND sla_idx > 0) AS sla_n,
                toUInt64(live AND o.1 = first_reply_operator AND frt_s IS NOT NULL AND sla_idx > 0
                         AND frt_s <= arrayElement({sla_seconds:Array(Float64)}, sla_idx)) AS sla_ok,
                if(live, ot.1, 0.) AS art_sum,
                toUInt64(if(live, ot.2, 0)) AS art_n,
                greatest(start, o.4) AS b,
                greatest(conv_end, start, o.4) AS e,
                toUInt64(live AND bot_base AND o.1 = first_operator) AS bot_n,
                if(live AND bot_base AND o.1 = first_operator AND handoff_bot_at IS NOT NULL,
                   (toUnixTimestamp64Milli(assumeNotNull(first_operator_at))
                    - toUnixTimestamp64Milli(assumeNotNull(handoff_bot_at))) / 1000, NULL) AS handoff
            FROM
            (
                SELECT
                    key_h,  -- hashes of identity_key (migrations 0011, 0012)
                    key_n,
                    assumeNotNull(started_at) AS start,
                    toUInt8(toDate32(start) >= {date_from:Date32} AND toDate32(start) < {date_to:Date32}) AS live,
                    -- the end of the conversation: its close, else its last message or transfer (O5)
                    ifNull(closed_at, greatest(ifNull(last_event_at, start), start)) AS conv_end,
                    indexOf({sla_channels:Array(String)}, toString(channel)) AS sla_idx,
                    first_reply_operator,
                    frt_s,
                    operators,
                    -- the turns each of them answered: (sum of response_s, count), migration 0011
                    operator_turns,
                    -- visitor-initiated with a bot message, and the hand-over (B1-B4, migration 0028)
                    toUInt8(initiated_by = 'visitor' AND bot_messages > 0) AS bot_base,
                    first_operator,
                    first_operator_at,
                    handoff_bot_at
                FROM conversations
                WHERE notEmpty(operators)
            )
            ARRAY JOIN operators AS o, operator_turns AS ot

            UNION ALL

            -- inbound answered calls
            SELECT
                key_h,  -- hashes of identity_key (migrations 0011, 0012)
                key_n,
                started_at,
                operator_id,
                toUInt64(toDate32(started_at) >= {date_from:Date32} AND toDate32(started_at) < {date_to:Date32}),
                toUInt64(0), toUInt64(0), CAST(NULL AS Nullable(Float64)), toUInt64(0), toUInt64(0), toFloat64(0), toUInt64(0),
                ifNull(answered_at, started_at),
                ended_at,
                toUInt64(0), CAST(NULL AS Nullable(Float64))
            FROM call_winners
            WHERE direction = 'inbound' AND outcome = 'answered' AND operator_id != ''
        ) AS h
        LEFT JOIN
        -- the contacts' identity keys of converting persons (view, migration 0010)
        converting_contact_keys AS k ON k.k_key_h = h.key_h AND k.k_key_n = h.key_n

        UNION ALL

        -- transfers, credited to from_operator_id (no conversation handled), summed per operator
        SELECT
            tr.2,
            toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0),
            countIf(toDate32(start) >= {date_from:Date32} AND toDate32(start) < {date_to:Date32}),
            CAST(NULL AS Nullable(Float64)), toUInt64(0), toUInt64(0), toFloat64(0), toUInt64(0),
            toDateTime64(0, 3, 'UTC'), toDateTime64(0, 3, 'UTC'),
            toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0),
            toUInt64(0), CAST(NULL AS Nullable(Float64))
        FROM
        (
            SELECT assumeNotNull(started_at) AS start, transfers
            FROM conversations
            WHERE notEmpty(transfers)
        )
        ARRAY JOIN transfers AS tr
        GROUP BY tr.2

        UNION ALL

        -- survey responses (S10): the response's operator, else the last operator
        -- of its conversation, else the operator of its answered call; summed per operator
        SELECT
            op,
            toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0),
            CAST(NULL, 'Nullable(Float64)'),
            toUInt64(0), toUInt64(0), toFloat64(0), toUInt64(0),
            toDateTime64(0, 3, 'UTC'), toDateTime64(0, 3, 'UTC'),
            countIf(live AND survey = 'csat'),
            countIf(live AND survey = 'csat' AND score >= 4),
            countIf(live AND survey = 'nps'),
            countIf(live AND survey = 'nps' AND score >= 9),
            countIf(live AND survey = 'nps' AND score <= 6),
            toUInt64(0), CAST(NULL AS Nullable(Float64))
        FROM
        (
            SELECT
                multiIf(s.operator_id != '', s.operator_id,
                        cv.last_operator != '', cv.last_operator,
                        cl.outcome = 'answered', cl.operator_id,
                        '') AS op,
                toString(s.survey) AS survey,
                s.score AS score,
                toDate32(s.responded_at) >= {date_from:Date32} AND toDate32(s.responded_at) < {date_to:Date32} AS live
            FROM surveys AS s FINAL
            LEFT JOIN
            (
                SELECT conversation_id, last_operator
                FROM conversations
                WHERE conversation_id IN (SELECT conversation_id FROM surveys WHERE conversation_id != '' AND operator_id = '')
            ) AS cv ON cv.conversation_id = s.conversation_id
            LEFT JOIN
            (
                SELECT call_id, outcome, operator_id
                FROM call_winners
                WHERE call_id IN (SELECT call_id FROM surveys WHERE call_id != '' AND operator_id = '')
            ) AS cl ON cl.call_id = s.call_id
        )
        WHERE op != ''
        GROUP BY op
    )
    GROUP BY op
)
ORDER BY operator_id
