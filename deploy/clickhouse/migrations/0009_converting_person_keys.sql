-- 0009: one view for the identity keys of converting persons, which the
-- campaigns, channels and operators KPI queries each spelled out in full.
-- Same SQL as theirs (0008's person_keys_n): candidate keys are those of every
-- person a deal key ever belonged to, then each candidate key takes its newest
-- version (as the persons view); a person converts when it owns a winning deal.
-- Columns: k_key_h, k_key_n (the key's cityHash64 and murmurHash3_128),
-- k_person (murmurHash3_128 of the person id), won (won_at of the person's deals).
-- Frozen: later changes are new migrations.

CREATE VIEW IF NOT EXISTS converting_person_keys AS
SELECT kk.1 AS k_key_h, kk.2 AS k_key_n, c_person AS k_person, won
FROM
(
    SELECT
        c_person,
        groupArray((c_key_h, c_key_n)) AS c_keys,
        arrayFlatten(groupArray(key_won)) AS won
    FROM
    (
        SELECT v.c_key_h AS c_key_h, v.c_key_n AS c_key_n, v.c_person AS c_person, d.key_won AS key_won
        FROM
        (
            SELECT key_h AS c_key_h, key_n AS c_key_n, argMax(person_n, version) AS c_person
            FROM person_keys_n
            WHERE key_h IN
            (
                SELECT key_h
                FROM person_keys_n
                WHERE person_h IN
                (
                    SELECT person_h
                    FROM person_keys_n
                    WHERE key_h IN (SELECT cityHash64(identity_key) FROM deal_winners)
                )
            )
            GROUP BY key_h, key_n
        ) AS v
        LEFT JOIN
        (
            SELECT cityHash64(identity_key) AS d_key_h, murmurHash3_128(identity_key) AS d_key_n,
                   groupArray(won_at) AS key_won
            FROM deal_winners
            GROUP BY identity_key
        ) AS d ON d.d_key_h = v.c_key_h AND d.d_key_n = v.c_key_n
    )
    GROUP BY c_person
    HAVING c_person != murmurHash3_128('') AND notEmpty(won)
)
ARRAY JOIN c_keys AS kk;
