-- A unit is known by its first click's event ID and the producer (queue or worker) that
-- made it, a random number each draws at start: two instances that share a worker ID
-- mint the same event IDs, and their units must not be taken for each other's
-- duplicates. Units of earlier versions are producer 0. The table holds only recent
-- units (pruned by ID range), so rebuilding its key is cheap.
ALTER TABLE click_units ADD COLUMN producer BIGINT NOT NULL DEFAULT 0;
ALTER TABLE click_units DROP CONSTRAINT click_units_pkey;
ALTER TABLE click_units ADD PRIMARY KEY (id, producer);
