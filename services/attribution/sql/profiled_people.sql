-- Which of these people have a non-empty profile now (they need a tombstone when they no longer qualify).
SELECT person_id
FROM person_profiles FINAL
WHERE person_id IN (SELECT key FROM attribution_people) AND notEmpty(keys)
