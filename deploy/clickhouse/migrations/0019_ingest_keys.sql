-- 0019: write keys of HTTP ingest and the fingerprint of the identity secret (issue 14).
-- Frozen: later changes are new migrations, never edits of this file.

-- One row per key version (create, then revoke): the newest version wins.
-- Only the SHA-256 of a key is stored; the key itself is printed once by
-- `leadflow keys create` and never kept.
CREATE TABLE IF NOT EXISTS ingest_keys
(
    key_id      String,
    source      String,
    key_sha256  String,
    rate        Float64,
    burst       UInt32,
    created_at  DateTime64(3, 'UTC'),
    revoked_at  Nullable(DateTime64(3, 'UTC')),
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY key_id;

-- HMAC-SHA256(identity_secret, constant) of the secret the warehouse's identity
-- hashes were made with: a process with another secret refuses to write.
CREATE TABLE IF NOT EXISTS identity_secret_fingerprint
(
    id           UInt8,
    fingerprint  String,
    recorded_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY id;
