-- 0002: facts written by the enrich and attribution stages (issues 3 and 4).
-- Frozen: later changes are new migrations, never edits of this file.
--
-- Conventions
-- * Every fact row carries `identity_key`: one keyed-hash identity value of its
--   event (`kind:hmac`). The person is resolved at query time through
--   `person_keys`, so a late merge re-homes every fact without rewriting it.
-- * Restated facts (deals, spend, calls, conversations) are versioned rows:
--   readers take the winner with argMax/argMin over a GROUP BY (or FINAL on
--   tables keyed by one id), which is exact before background merges.
-- * Tables whose key can move between months are not partitioned, because a
--   ReplacingMergeTree only replaces rows inside one partition.

-- Identity graph: identity value -> person, newest version wins.
-- Read: SELECT identity_key, argMax(person_id, version) FROM person_keys GROUP BY identity_key
CREATE TABLE IF NOT EXISTS person_keys
(
    identity_key String,
    person_id    String,
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY identity_key;

-- Every ad_click (a touch). One row per event_id.
CREATE TABLE IF NOT EXISTS clicks
(
    event_id     String,
    identity_key String,
    clicked_at   DateTime64(3, 'UTC'),
    channel      LowCardinality(String),
    campaign_id  String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(clicked_at)
ORDER BY event_id;

-- Every lead event; the winner per lead_id is the earliest (lead_at, event_id).
CREATE TABLE IF NOT EXISTS leads
(
    lead_id      String,
    event_id     String,
    identity_key String,
    lead_at      DateTime64(3, 'UTC'),
    channel      LowCardinality(String),
    campaign_id  String,
    form         String
)
ENGINE = ReplacingMergeTree
ORDER BY (lead_id, event_id);

-- Every deal_won event; the winner per deal_id is the latest (won_at, event_id).
CREATE TABLE IF NOT EXISTS deals
(
    deal_id      String,
    event_id     String,
    identity_key String,
    won_at       DateTime64(3, 'UTC'),
    revenue      Decimal(18, 6)
)
ENGINE = ReplacingMergeTree
ORDER BY (deal_id, event_id);

-- Every payment event; the winner per payment_id is the latest (paid_at, event_id).
CREATE TABLE IF NOT EXISTS payments
(
    payment_id   String,
    event_id     String,
    identity_key String,
    paid_at      DateTime64(3, 'UTC'),
    amount       Decimal(18, 6),
    deal_id      String
)
ENGINE = ReplacingMergeTree
ORDER BY (payment_id, event_id);

-- Every ad_spend event; the winner per (campaign_id, date) is the latest (occurred_at, event_id).
CREATE TABLE IF NOT EXISTS ad_spend
(
    campaign_id  String,
    date         Date,
    event_id     String,
    occurred_at  DateTime64(3, 'UTC'),
    channel      LowCardinality(String),
    cost         Decimal(18, 6),
    impressions  Nullable(UInt64),
    clicks       Nullable(UInt64)
)
ENGINE = ReplacingMergeTree
ORDER BY (campaign_id, date, event_id);

-- Every call_completed event; the winner per call_id is the latest (occurred_at, event_id).
CREATE TABLE IF NOT EXISTS calls
(
    call_id         String,
    event_id        String,
    occurred_at     DateTime64(3, 'UTC'),
    identity_key    String,
    direction       LowCardinality(String),
    outcome         LowCardinality(String),
    operator_id     String,
    campaign_id     String,
    tracking_number String,
    queue           String,
    started_at      DateTime64(3, 'UTC'),
    answered_at     Nullable(DateTime64(3, 'UTC')),
    ended_at        DateTime64(3, 'UTC'),
    wait_s          Nullable(Float64),
    talk_s          Nullable(Float64)
)
ENGINE = ReplacingMergeTree
ORDER BY (call_id, event_id);

-- Every survey_response event.
CREATE TABLE IF NOT EXISTS surveys
(
    event_id        String,
    responded_at    DateTime64(3, 'UTC'),
    survey          LowCardinality(String),
    score           UInt8,
    identity_key    String,
    conversation_id String,
    call_id         String,
    operator_id     String
)
ENGINE = ReplacingMergeTree
ORDER BY event_id;

-- One row per conversation, recomputed by enrich from all of its events
-- whenever one arrives (any order gives the same row). Newest version wins:
-- read with FINAL or argMax(..., version) GROUP BY conversation_id.
-- `started` = 0 while no conversation_started is known (such rows count
-- nowhere, kpi-readings C1). Times are UTC.
CREATE TABLE IF NOT EXISTS conversation_facts
(
    conversation_id      String,
    version              UInt64,
    started              UInt8,
    started_event_id     String,
    identity_key         String,
    started_at           Nullable(DateTime64(3, 'UTC')),
    channel              LowCardinality(String),
    initiated_by         LowCardinality(String),
    campaign_id          String,
    visitor_messages     UInt32,
    first_visitor_at     Nullable(DateTime64(3, 'UTC')),
    last_visitor_at      Nullable(DateTime64(3, 'UTC')),
    -- first human operator message after the first visitor message (visitor-initiated only)
    first_reply_at       Nullable(DateTime64(3, 'UTC')),
    first_reply_operator String,
    frt_s                Nullable(Float64),
    frt_business_s       Nullable(Float64),
    -- first operator or bot message at any time (for missed)
    first_any_reply_at   Nullable(DateTime64(3, 'UTC')),
    closed_at            Nullable(DateTime64(3, 'UTC')),
    resolved             Nullable(UInt8),
    -- missed deadline: closed_at, else last visitor message + missed_after_hours
    missed_deadline      Nullable(DateTime64(3, 'UTC')),
    -- answered visitor turns: start of the turn, seconds to the response, responder
    turns                Array(Tuple(started_at DateTime64(3, 'UTC'), response_s Float64,
                                     responder_kind String, responder_operator String)),
    transfers            Array(Tuple(at DateTime64(3, 'UTC'), from_operator String, to_operator String)),
    -- per operator who sent messages: count, templated count, first and last message time
    operators            Array(Tuple(operator_id String, messages UInt32, templated UInt32,
                                     first_at DateTime64(3, 'UTC'), last_at DateTime64(3, 'UTC'))),
    last_operator        String,
    last_event_at        Nullable(DateTime64(3, 'UTC'))
)
ENGINE = ReplacingMergeTree(version)
ORDER BY conversation_id;

-- Attribution credits: one row per (deal, model) holding all its credited
-- touches, so a recomputation replaces the whole set at once (a touch that
-- left the window loses its credit; nothing is summed twice). Newest version
-- wins. A conversion without an eligible touch has one credit to '(none)'.
CREATE TABLE IF NOT EXISTS attribution_credits
(
    deal_id          String,
    model            LowCardinality(String),
    version          UInt64,
    person_id        String,
    won_at           DateTime64(3, 'UTC'),
    revenue          Decimal(18, 6),
    touch_event_ids  Array(String),
    touch_kinds      Array(String),
    channels         Array(String),
    campaigns        Array(String),
    operators        Array(Array(String)),
    credits          Array(Float64)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (deal_id, model);
