-- 0006: conversation events by conversation_id, so enrich reads one
-- conversation's events through the primary key instead of scanning
-- raw_events (sorted by event_id). Filled by a materialized view on every
-- insert into raw_events; existing rows are copied once.
-- Frozen: later changes are new migrations.

CREATE TABLE IF NOT EXISTS conversation_events
(
    conversation_id String,
    event_id        String,
    type            LowCardinality(String),
    occurred_at     DateTime64(3, 'UTC'),
    payload         String
)
ENGINE = ReplacingMergeTree
ORDER BY (conversation_id, event_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS conversation_events_mv TO conversation_events AS
SELECT conversation_id, event_id, type, occurred_at, payload
FROM raw_events
WHERE conversation_id != '';

INSERT INTO conversation_events
SELECT conversation_id, event_id, type, occurred_at, payload
FROM raw_events
WHERE conversation_id != '' AND (SELECT count() FROM conversation_events) = 0;
