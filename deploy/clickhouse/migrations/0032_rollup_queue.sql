-- 0032: the rollups' bookkeeping (issue 18, services/rollup/).
--
-- rollup_queue: the entities (kind:id) enrich and attribution announced to the rollup
-- stage (done = 0, at their version) and those it recomputed (done = 1, at its later
-- version). An embedded pipeline that restarts announces the pending ones again (its
-- broker, and the messages in it, are gone), as attribution_queue does for people.
-- rollup_settings: the fingerprint of the settings the stored items were computed with
-- (windows, SLA targets, missed deadline): another one means a rebuild, and the KPI
-- queries read the facts until then.
-- Frozen: later changes are new migrations.
CREATE TABLE IF NOT EXISTS rollup_queue
(
    entity  String,
    version UInt64,
    done    UInt8
)
ENGINE = ReplacingMergeTree(version)
ORDER BY entity;

CREATE TABLE IF NOT EXISTS rollup_settings
(
    name        String,
    fingerprint String,
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY name;
