-- 0022: tables that `leadflow forget` rewrites drop their replaced parts from disk
-- within a second or two instead of 30-300 s (services/erasure).
--
-- An ALTER TABLE ... DELETE mutation and OPTIMIZE ... FINAL write new parts without
-- the erased rows; the old parts stay on disk, outdated, until the table's cleanup
-- task removes them. On chdb that task ran 30-40 s after a rewrite (cleanup_delay_period
-- 30 plus up to 10 random), and could back off to 300 s (max_cleanup_delay_period).
-- These settings run it every second on the tables that can hold identity values.
-- They take effect when a table is loaded (the next process start on chdb, the next
-- server restart or table attach), and cost a cheap directory check per table per
-- second. `old_parts_lifetime` (how long an outdated part is kept, 480 s on a server:
-- its protection against losing un-fsynced merges on a power cut) is left as it is;
-- `leadflow forget` waits for the outdated parts it made and reports those left.
-- Frozen: later changes are new migrations.

ALTER TABLE raw_events MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

ALTER TABLE conversation_events MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

ALTER TABLE dead_letters MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

ALTER TABLE person_keys MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

ALTER TABLE clicks MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

ALTER TABLE click_firsts MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

ALTER TABLE leads MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

ALTER TABLE deals MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

ALTER TABLE payments MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

ALTER TABLE calls MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

ALTER TABLE call_latest MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

ALTER TABLE surveys MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

ALTER TABLE conversation_facts MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

ALTER TABLE enriched_events MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

ALTER TABLE attribution_queue MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

ALTER TABLE attribution_credits MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

ALTER TABLE person_profiles MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
