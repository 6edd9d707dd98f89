-- Identity values that belong to these people now (the newest person_keys row wins), with
-- every person that ever held them (`owners`: a person absorbed by a merge held some).
SELECT identity_key, argMax(p, version) AS person_id, groupUniqArray(p) AS owners
FROM
(
    SELECT identity_key, person_id AS p, version
    FROM person_keys
    WHERE identity_key IN (SELECT identity_key FROM person_keys WHERE person_id IN (SELECT key FROM attribution_people))
)
GROUP BY identity_key
HAVING person_id IN (SELECT key FROM attribution_people)
