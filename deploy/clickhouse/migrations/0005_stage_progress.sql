-- 0005: what each stage has finished, so an embedded run (whose broker keeps
-- its log in memory) can resume after a crash: at start, stored events that
-- enrich has not processed are fed to it again, and people whose credits are
-- pending are given to attribution again. Both stages are idempotent, so a
-- second pass over finished work changes nothing.
-- Frozen: later changes are new migrations.

-- event_ids enrich has processed (written in the same batch as their facts)
CREATE TABLE IF NOT EXISTS enriched_events
(
    event_id String
)
ENGINE = ReplacingMergeTree
ORDER BY event_id;

-- people whose credits must be recomputed: enrich inserts done = 0,
-- attribution inserts done = 1 at a newer version when it has written them.
-- Pending: SELECT person_id FROM attribution_queue GROUP BY person_id HAVING argMax(done, version) = 0
CREATE TABLE IF NOT EXISTS attribution_queue
(
    person_id String,
    version   UInt64,
    done      UInt8
)
ENGINE = ReplacingMergeTree(version)
ORDER BY person_id;
