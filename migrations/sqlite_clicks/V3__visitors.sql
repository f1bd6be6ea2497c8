-- Unique visitors per link and day (see migrations/postgres/V8): the distinct visitor
-- hashes of each (link, day) while the day can still receive clicks, and the count.
ALTER TABLE click_daily ADD COLUMN visitors INTEGER NOT NULL DEFAULT 0;

CREATE TABLE click_visitors (
    link_id INTEGER NOT NULL,
    day     TEXT    NOT NULL,
    visitor INTEGER NOT NULL,
    PRIMARY KEY (link_id, day, visitor)
) WITHOUT ROWID;
CREATE INDEX click_visitors_day ON click_visitors (day);
