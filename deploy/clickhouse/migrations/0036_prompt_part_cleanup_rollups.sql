-- 0036: the rollup tables `leadflow forget` rewrites (the item logs and the queue lose the rows
-- named after the erased ids; the rollups are merged so no map keeps a key of theirs) drop their
-- replaced parts within a second or two, as 0022 and 0031 do for the others.
-- Frozen: later changes are new migrations.

ALTER TABLE rollup_queue MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE rollup_items_channels MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE rollup_items_operators MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE rollup_items_service MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE rollup_channels MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE rollup_campaigns MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE rollup_campaign_channels MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE rollup_operators MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE rollup_service MODIFY SETTING cleanup_delay_period = 1, max_cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
