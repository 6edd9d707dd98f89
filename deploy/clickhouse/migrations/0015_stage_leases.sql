-- 0015: writer leases with fencing tokens (leadflow/lease.py). One identity writer: an enrich
-- stage that shares its warehouse holds the lease 'enrich' while it writes person_keys.
-- Every claim, renewal and release is a row. The current lease is the highest token; among
-- claims of one token the earliest (then the smallest holder) wins; its latest row says until
-- when it holds (expires_at, server time). A holder checks before each batch that it still
-- holds the highest token (fencing).
-- Frozen: later changes are new migrations.
CREATE TABLE IF NOT EXISTS stage_leases
(
    name       LowCardinality(String),
    token      UInt64,
    holder     String,
    expires_at DateTime64(3, 'UTC'),
    written_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = MergeTree
ORDER BY (name, token, holder, written_at)
TTL toDateTime(written_at) + INTERVAL 7 DAY;
