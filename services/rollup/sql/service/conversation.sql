-- Items of conversations (rollup of `service`, migration 0034): one row per conversation of a
-- non-`call` channel (x the profiles its identity key matches, as the reference's join), dated
-- by its start. Values as services/attribution/kpis/sql/service.sql's conversation part with
-- live = 1; "now" is left to kpis.sql: `missed` is set when the conversation is missed whatever
-- now is (closed without a reply before the deadline), `deadline` (ms) when it is missed once
-- now reaches it (not closed, no reply before it), `other` when it is neither (S5, L2).
-- The person's deals and leads come from the profiles (profile_contact_keys, migration 0010):
-- the stage re-announces a person's conversations when the person's profile changes.
SELECT
    i.conversation_id AS id,
    toDate32(i.start) AS day,
    toString(i.channel) AS channel,
    toUInt8(1) AS conv_n,
    i.frt_s AS frt,
    i.turn_sum_s AS turn_sum,
    i.turn_count AS turn_n,
    toUInt8(i.sla_base AND i.sla_idx > 0) AS sla_n,
    toUInt8(i.sla_base AND i.sla_idx > 0
            AND ifNull(i.frt_s <= arrayElement({sla_seconds:Array(Float64)}, i.sla_idx), 0)) AS sla_ok,
    toUInt8(ifNull(i.unreplied AND i.closed_at IS NOT NULL, 0)) AS missed,
    if(ifNull(i.unreplied AND i.closed_at IS NULL AND i.dl IS NOT NULL, 0),
       toUnixTimestamp64Milli(assumeNotNull(i.dl)), NULL) AS deadline,
    toUInt8(notEmpty(i.transfers)) AS transferred,
    toUInt8(i.channel IN ('chat', 'messenger')
            AND arrayExists(l -> l >= i.start AND l <= addMilliseconds(i.start, {capture_window_ms:Int64}), k.lead_times))
        AS captured,
    toUInt8(0) AS offered,
    toUInt8(0) AS answered,
    toUInt8(0) AS missed_calls,
    toUInt8(0) AS abandoned,
    CAST(NULL AS Nullable(Float64)) AS wait,
    CAST(NULL AS Nullable(Float64)) AS talk,
    toUInt8(1 - missed - (deadline IS NOT NULL)) AS other,
    toUInt8(arrayExists(d -> d.1 >= i.start AND d.1 <= addMilliseconds(i.start, {conversion_window_ms:Int64}), k.won)) AS hit,
    arrayMap(d -> concat(hex(sipHash128(d.2)), '\t', toString(d.3)),
             arrayFilter(d -> d.1 >= i.start AND d.1 <= addMilliseconds(i.start, {conversion_window_ms:Int64}), k.won))
        AS deals,
    toUInt8(0) AS csat_n,
    toUInt8(0) AS csat_ok,
    toUInt8(0) AS nps_n,
    toUInt8(0) AS nps_promoters,
    toUInt8(0) AS nps_detractors,
    toUInt8(i.bot_base) AS bot_n,
    -- closed: its missed flag does not depend on now
    toUInt8(i.bot_base AND i.closed_at IS NOT NULL AND i.first_operator_at IS NULL AND missed = 0) AS bot_kept,
    if(i.bot_base AND i.handoff_bot_at IS NOT NULL,
       (toUnixTimestamp64Milli(assumeNotNull(i.first_operator_at))
        - toUnixTimestamp64Milli(assumeNotNull(i.handoff_bot_at))) / 1000, NULL) AS handoff
FROM
(
    SELECT
        conversation_id,
        key_h,
        key_n,
        channel,
        assumeNotNull(started_at) AS start,
        frt_s,
        turn_sum_s,
        turn_count,
        transfers,
        indexOf({sla_channels:Array(String)}, toString(channel)) AS sla_idx,
        toUInt8(initiated_by = 'visitor' AND visitor_messages > 0) AS sla_base,
        ifNull(closed_at, addMilliseconds(last_visitor_at, {missed_after_ms:Int64})) AS dl,
        -- S5 without its "now" part: no operator or bot message at or before the deadline
        sla_base AND (first_any_reply_at IS NULL OR first_any_reply_at > dl) AS unreplied,
        toUInt8(initiated_by = 'visitor' AND bot_messages > 0) AS bot_base,
        closed_at,
        first_operator_at,
        handoff_bot_at
    FROM conversations
    WHERE channel != 'call' AND conversation_id IN (SELECT key FROM rollup_ids)
) AS i
LEFT JOIN
(
    SELECT k_key_h, k_key_n, won, lead_times
    FROM profile_contact_keys
    WHERE k_key_h IN (SELECT key_h FROM conversations WHERE conversation_id IN (SELECT key FROM rollup_ids))
) AS k ON k.k_key_h = i.key_h AND k.k_key_n = i.key_n
