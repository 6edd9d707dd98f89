-- 0001: accepted events and dead letters (issue 2).
-- Frozen: later changes are new migrations, never edits of this file.

-- Every accepted event once (the sink drops known event_ids; a redelivered
-- batch can still insert a row twice, so readers dedup with FINAL or
-- `LIMIT 1 BY event_id` and never count a duplicate before merges).
-- Identity values are keyed hashes (`kind:hmac`), in `identity_keys` and in
-- `payload` alike.
CREATE TABLE IF NOT EXISTS raw_events
(
    event_id        String,
    type            LowCardinality(String),
    occurred_at     DateTime64(3, 'UTC'),
    received_at     DateTime64(3, 'UTC'),
    source          LowCardinality(String),
    identity_keys   Array(String),
    conversation_id String,
    call_id         String,
    campaign_id     String,
    channel         LowCardinality(String),
    payload         String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY event_id;

-- Rejected input with the original bytes and every error found.
-- dead_letter_id = sha256(original bytes) + occurrence number within its
-- input, so replaying the same file twice stores each bad line once.
CREATE TABLE IF NOT EXISTS dead_letters
(
    dead_letter_id  String,
    rejected_at     DateTime64(3, 'UTC'),
    source          LowCardinality(String),
    origin          String,
    event_id        String,
    event_type      String,
    error_kind      LowCardinality(String),
    errors          Array(Tuple(path String, message String)),
    raw_payload     String,
    processor       LowCardinality(String),
    processor_version LowCardinality(String)
)
ENGINE = ReplacingMergeTree
ORDER BY dead_letter_id
TTL toDateTime(rejected_at) + INTERVAL 30 DAY;
