-- 0008: the identity graph as fixed-width hashes, for the KPI queries (issue 4).
--
-- The KPI queries need the identity keys of converting persons (persons that
-- own a winning deal), resolved against the current graph. Reading
-- `person_keys FINAL` (4M string keys at 10M events) and filtering it by
-- person_id cost most of every KPI query. `person_keys_n` holds the same rows
-- as 128-bit hashes (murmurHash3_128 of identity_key and of person_id, the
-- width of the keyed hashes identity keys already are), so the queries find
-- the candidate keys of a set of persons with one scan of a narrow column and
-- then resolve exactly those keys' newest version (argMax over all their rows,
-- what `persons` does with FINAL). It stays keyed by identity value: a merge
-- that re-homes keys inserts newer versions, as in person_keys.
--
-- Fed by a materialized view on every insert into person_keys; existing rows
-- are copied once. A row copied twice (an insert racing the copy, or a rerun
-- of this migration) changes nothing: readers take argMax(person_n, version).
-- Frozen: later changes are new migrations.

CREATE TABLE IF NOT EXISTS person_keys_n
(
    key_h    UInt64,
    key_n    FixedString(16),
    person_h UInt64,
    person_n FixedString(16),
    version  UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (key_h, key_n);

CREATE MATERIALIZED VIEW IF NOT EXISTS person_keys_n_mv TO person_keys_n AS
SELECT cityHash64(identity_key) AS key_h, murmurHash3_128(identity_key) AS key_n,
       cityHash64(person_id) AS person_h, murmurHash3_128(person_id) AS person_n, version
FROM person_keys;

INSERT INTO person_keys_n
SELECT cityHash64(identity_key) AS key_h, murmurHash3_128(identity_key) AS key_n,
       cityHash64(person_id) AS person_h, murmurHash3_128(person_id) AS person_n, version
FROM person_keys;

-- The first click (by clicked_at, event_id) of each (campaign_id, channel):
-- the channel rows of clicks (channels.sql) and the first touch of a campaign
-- (campaigns.sql) without reading every click. A click is one immutable row
-- per event_id, so a redelivered copy changes no minimum.
CREATE TABLE IF NOT EXISTS click_firsts
(
    campaign_id String,
    channel     LowCardinality(String),
    first       AggregateFunction(min, Tuple(DateTime64(3, 'UTC'), String))
)
ENGINE = AggregatingMergeTree
ORDER BY (campaign_id, channel);

CREATE MATERIALIZED VIEW IF NOT EXISTS click_firsts_mv TO click_firsts AS
SELECT campaign_id, channel, minState(tuple(clicked_at, event_id)) AS first
FROM clicks
GROUP BY campaign_id, channel;

INSERT INTO click_firsts
SELECT campaign_id, channel, minState(tuple(clicked_at, event_id)) AS first
FROM clicks
GROUP BY campaign_id, channel;
