-- 0021: identity values that `leadflow forget` erased and that must never come back
-- (contract v1.1 section 5; services/erasure).
--
-- One row per identity value of a forgotten person. `digest` is SHA-256 of the
-- value's keyed hash (leadflow.privacy.suppression_digest), never the keyed hash
-- itself, so nothing here joins to a fact table. Ingest (services/ingest/suppression.py)
-- keeps the digests in memory and drops events that carry one; the warehouse sink and
-- enrich check their batches against this table before they store anything.
-- Frozen: later changes are new migrations.

CREATE TABLE IF NOT EXISTS suppressed_keys
(
    digest        String,
    kind          LowCardinality(String),
    suppressed_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY digest;
