-- A unit is known by its first click's event ID and its producer (see
-- migrations/postgres/V6). SQLite cannot change a primary key in place: the table is
-- copied (it holds only recent units). Units of earlier versions are producer 0.
CREATE TABLE click_units_by_producer (
    id       INTEGER NOT NULL,
    producer INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (id, producer)
) WITHOUT ROWID;
INSERT INTO click_units_by_producer (id) SELECT id FROM click_units;
DROP TABLE click_units;
ALTER TABLE click_units_by_producer RENAME TO click_units;
