-- Identity values that belong to these people now (the newest person_keys row wins).
SELECT identity_key, argMax(person_id, version) AS person_id
FROM person_keys
WHERE identity_key IN (SELECT identity_key FROM person_keys WHERE person_id IN (SELECT key FROM attribution_people))
GROUP BY identity_key
HAVING person_id IN (SELECT key FROM attribution_people)
