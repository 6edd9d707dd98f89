-- 0027: the campaign of a person's first-ever touch in their profile (issue 16: predicted
-- LTV per first-touch campaign, `leadflow kpis ltv --by campaign`), written by the
-- attribution stage with the rest of the profile ('' when that touch has no campaign).
-- Profiles written before this migration read '' until their person is next recomputed
-- (a touch, deal, payment or identity change); replay the history for a full backfill.
-- Frozen: later changes are new migrations.
ALTER TABLE person_profiles ADD COLUMN IF NOT EXISTS first_campaign String DEFAULT '';
