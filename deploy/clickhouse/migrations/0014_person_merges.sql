-- 0014: which person absorbed which (issue 13: a retry is a replay).
--
-- When a link joins two people, every identity value of the absorbed one moves to
-- the survivor (person_keys, newer versions) and the absorbed person's profile must
-- become a tombstone. Enrich knew the absorbed people only from what changed in its
-- memory, which a retried batch no longer sees, and person_keys keeps no history
-- (ReplacingMergeTree: older versions go at merges). Enrich now writes each merge
-- here before the person_keys rows that make it, and attribution, recomputing a
-- survivor, tombstones the profiles of the people it absorbed that hold no identity
-- value now (services/attribution/profiles.py), whoever announced them.
-- Merges made before this migration are not known (their profiles were tombstoned then).
-- Frozen: later changes are new migrations.

CREATE TABLE IF NOT EXISTS person_merges
(
    survivor String,
    absorbed String,
    version  UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (survivor, absorbed);
