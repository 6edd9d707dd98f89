-- 0012: the winning row of each call, kept by enrich (issue 7: KPI queries at 10M events).
--
-- `call_winners` picked, on every read, the latest (occurred_at, event_id) row of
-- each call_id with an argMax over every call (100-170 ms of CPU per KPI query at
-- 10M events, twice per query). Enrich now recomputes the winner of the calls a
-- batch touches, from all their stored rows, and writes it here at a newer
-- version (services/enrich/winners.py), as it does for conversations; the view
-- reads this table. A recomputation is idempotent: the same rows give the same winner.
-- Existing warehouses get their winners copied once (version 0).
-- Frozen: later changes are new migrations.

CREATE TABLE IF NOT EXISTS call_latest
(
    call_id      String,
    event_id     String,
    occurred_at  DateTime64(3, 'UTC'),
    identity_key String,
    direction    LowCardinality(String),
    outcome      LowCardinality(String),
    operator_id  String,
    campaign_id  String,
    started_at   DateTime64(3, 'UTC'),
    answered_at  Nullable(DateTime64(3, 'UTC')),
    ended_at     DateTime64(3, 'UTC'),
    wait_s       Nullable(Float64),
    talk_s       Nullable(Float64),
    version      UInt64,
    -- the hashes of identity_key the KPI queries join on (as conversation_facts, 0011)
    key_h        UInt64 DEFAULT cityHash64(identity_key),
    key_n        FixedString(16) DEFAULT murmurHash3_128(identity_key)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY call_id;

INSERT INTO call_latest (call_id, event_id, occurred_at, identity_key, direction, outcome, operator_id, campaign_id,
                         started_at, answered_at, ended_at, wait_s, talk_s, version)
SELECT call_id, event_id, occurred_at, identity_key, direction, outcome, operator_id, campaign_id, started_at,
       answered_at, ended_at, wait_s, talk_s, toUInt64(0)
FROM call_winners;

CREATE OR REPLACE VIEW call_winners AS
SELECT call_id, event_id, occurred_at, identity_key, direction, outcome, operator_id, campaign_id, started_at,
       answered_at, ended_at, wait_s, talk_s, key_h, key_n
FROM call_latest FINAL;
