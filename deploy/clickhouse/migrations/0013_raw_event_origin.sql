-- 0013: where the warehouse sink read each stored event (issue 13: a retry is a replay).
--
-- The sink inserts a batch into raw_events, then forwards it to enrich; a batch
-- retried or redelivered after a failure in between found its own rows and
-- called them duplicates (and forwarded nothing). Each row now keeps the Kafka
-- record it came from: topic, partition, offset and the record's timestamp (a
-- topic deleted and created again reuses offsets; its records' timestamps
-- differ). A record whose event_id is stored with the same origin is that
-- record's own row, stored by an earlier attempt: accepted (once), and forwarded
-- again unless enrich has it. Another origin is a duplicate.
-- Rows stored before this migration have an empty origin (they are duplicates of
-- any record).
-- Frozen: later changes are new migrations.

ALTER TABLE raw_events ADD COLUMN IF NOT EXISTS origin_topic LowCardinality(String) DEFAULT '';

ALTER TABLE raw_events ADD COLUMN IF NOT EXISTS origin_partition UInt32 DEFAULT 0;

ALTER TABLE raw_events ADD COLUMN IF NOT EXISTS origin_offset UInt64 DEFAULT 0;

ALTER TABLE raw_events ADD COLUMN IF NOT EXISTS origin_timestamp Int64 DEFAULT 0;
