-- 0020: a dead letter keeps at most max_event_bytes of the original bytes
-- (raw_payload), with the length and SHA-256 of the whole original (issue 14).
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS raw_length UInt64;
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS raw_sha256 String
