-- 0010: a profile per person with a conversion or a lead, written by the
-- attribution stage (issue 7: KPI queries at 10M events).
--
-- The KPI queries need, for every contact, lead or fact, what its person did:
-- the person's deals, lead times, first-ever touch and lifetime value. Until
-- now each query resolved the persons through the whole identity graph
-- (person_keys_n) and regrouped every fact by person, which cost 250-600 ms at
-- 10M events per query. The attribution stage already loads every deal and
-- touch of the people it recomputes (on a touch, a conversion, a payment, a
-- new identity value or a merge), so it writes their profile in the same
-- batch; the queries join facts to the profiles' keys instead.
--
-- One row per person, replaced whole by a newer version (ReplacingMergeTree,
-- read with FINAL). A person that was absorbed by a merge, or no longer has a
-- deal or a lead, gets an empty row at a newer version (a tombstone), so its
-- old keys count for nobody.
--   keys         the person's identity values now (key_h, key_n: their hashes, as person_keys_n)
--   contact_keys those of them that conversations or inbound calls carry (ck_h, ck_n:
--                hashes): the service and operator queries join contacts to these only,
--                a quarter of all keys at 10M events
--   won          its winning deals: (won_at, deal_id, revenue)
--   lead_times   lead_at of its winning leads
--   first_channel  channel of its first-ever touch (by time, then event_id); '(none)' without touches
--   value        deal revenue + payment amounts, all time (ltv)
-- Frozen: later changes are new migrations.

CREATE TABLE IF NOT EXISTS person_profiles
(
    person_id     String,
    version       UInt64,
    keys          Array(String),
    key_h         Array(UInt64) MATERIALIZED arrayMap(k -> cityHash64(k), keys),
    key_n         Array(FixedString(16)) MATERIALIZED arrayMap(k -> murmurHash3_128(k), keys),
    contact_keys  Array(String),
    ck_h          Array(UInt64) MATERIALIZED arrayMap(k -> cityHash64(k), contact_keys),
    ck_n          Array(FixedString(16)) MATERIALIZED arrayMap(k -> murmurHash3_128(k), contact_keys),
    won           Array(Tuple(DateTime64(3, 'UTC'), String, Float64)),
    lead_times    Array(DateTime64(3, 'UTC')),
    first_channel String,
    value         Decimal(38, 6)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY person_id;

-- One row per identity value that a contact carries, of a person with a deal or a lead.
CREATE VIEW IF NOT EXISTS profile_contact_keys AS
SELECT k.1 AS k_key_h, k.2 AS k_key_n, murmurHash3_128(person_id) AS k_person, won, lead_times
FROM person_profiles FINAL
ARRAY JOIN arrayZip(ck_h, ck_n) AS k
WHERE notEmpty(won) OR notEmpty(lead_times);

-- One row per identity value that a contact carries, of a converting person.
CREATE VIEW IF NOT EXISTS converting_contact_keys AS
SELECT k.1 AS k_key_h, k.2 AS k_key_n, murmurHash3_128(person_id) AS k_person, arrayMap(w -> w.1, won) AS won
FROM person_profiles FINAL
ARRAY JOIN arrayZip(ck_h, ck_n) AS k
WHERE notEmpty(won);

-- 0009's view, now read from the profiles: the identity values of converting persons.
CREATE OR REPLACE VIEW converting_person_keys AS
SELECT k.1 AS k_key_h, k.2 AS k_key_n, murmurHash3_128(person_id) AS k_person, arrayMap(w -> w.1, won) AS won
FROM person_profiles FINAL
ARRAY JOIN arrayZip(key_h, key_n) AS k
WHERE notEmpty(won);

-- person_keys_n (0008) has no reader left: stop copying every person_keys insert into it.
DROP VIEW IF EXISTS person_keys_n_mv;
DROP TABLE IF EXISTS person_keys_n;

-- Profiles of an existing warehouse, computed once from its facts (version 0:
-- the stage's next write of a person replaces them).
INSERT INTO person_profiles (person_id, version, keys, contact_keys, won, lead_times, first_channel, value)
SELECT m.person_id, toUInt64(0), m.keys, f.contact_keys, f.won, f.lead_times, f.first_channel, f.value
FROM
(
    SELECT person_id, groupArray(identity_key) AS keys
    FROM persons
    GROUP BY person_id
) AS m
INNER JOIN
(
    SELECT
        p.person_id AS person_id,
        groupArrayIf((x.at, x.deal_id, toFloat64(x.amount)), x.kind = 'deal') AS won,
        groupArrayIf(x.at, x.kind = 'lead') AS lead_times,
        groupUniqArrayIf(x.identity_key, x.kind IN ('conversation', 'call')) AS contact_keys,
        if(countIf(x.touch = 1) = 0, '(none)', argMinIf(x.channel, (x.at, x.event_id), x.touch = 1)) AS first_channel,
        sumIf(x.amount, x.kind IN ('deal', 'payment')) AS value
    FROM
    (
        SELECT 'click' AS kind, toUInt8(1) AS touch, identity_key, clicked_at AS at, event_id, toString(channel) AS channel,
               '' AS deal_id, toDecimal128(0, 6) AS amount
        FROM clicks
        UNION ALL
        SELECT 'lead', 1, identity_key, lead_at, event_id, channel, '', toDecimal128(0, 6)
        FROM lead_winners
        UNION ALL
        SELECT 'conversation', 1, identity_key, assumeNotNull(started_at), started_event_id, toString(channel), '',
               toDecimal128(0, 6)
        FROM conversations
        UNION ALL
        SELECT 'call', 1, identity_key, started_at, event_id, 'call', '', toDecimal128(0, 6)
        FROM call_winners
        WHERE direction = 'inbound'
        UNION ALL
        SELECT 'deal', 0, identity_key, won_at, event_id, '', deal_id, toDecimal128(revenue, 6)
        FROM deal_winners
        UNION ALL
        SELECT 'payment', 0, identity_key, paid_at, event_id, '', '', toDecimal128(amount, 6)
        FROM payment_winners
    ) AS x
    INNER JOIN persons AS p ON p.identity_key = x.identity_key
    GROUP BY p.person_id
    HAVING notEmpty(won) OR notEmpty(lead_times)
) AS f ON f.person_id = m.person_id;
