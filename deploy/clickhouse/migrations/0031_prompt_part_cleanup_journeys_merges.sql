-- 0031: the tables added beside 0022 that `leadflow forget` rewrites (journeys, 0025;
-- person_merges, 0014) drop their replaced parts within a second or two, as 0022 does for
-- the others (see there why).
-- Frozen: later changes are new migrations.

ALTER TABLE journeys MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;

ALTER TABLE person_merges MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
