-- The embedded mode's click counts, in a file of their own (clicks.db beside
-- shortener.db): its own writer and its own commits, so counting clicks never holds the
-- write lock that shortens need. Same shapes as migrations/postgres (V2, V4); times are
-- Unix milliseconds, days 'YYYY-MM-DD', dims a JSON array of partial sums (a flush
-- appends its own; the store sums the array into one element every 16 flushes).
CREATE TABLE click_daily (
    link_id  INTEGER NOT NULL,
    day      TEXT    NOT NULL,
    total    INTEGER NOT NULL,
    bots     INTEGER NOT NULL,
    dims     TEXT    NOT NULL DEFAULT '[]',
    PRIMARY KEY (link_id, day)
) WITHOUT ROWID;

-- The IDs of the units counted (see migrations/postgres/V4): the row ID is the unit ID.
CREATE TABLE click_units (
    id INTEGER PRIMARY KEY
);

-- Sampled raw events (analytics.raw_events), pruned after analytics.retention_days.
CREATE TABLE click_events (
    event_id   INTEGER PRIMARY KEY,
    link_id    INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    referrer   TEXT    NOT NULL,
    browser    TEXT    NOT NULL,
    os         TEXT    NOT NULL,
    device     TEXT    NOT NULL,
    bot        INTEGER NOT NULL,
    client     TEXT    NOT NULL
);
CREATE INDEX click_events_at ON click_events (at);

-- When the counts kept in shortener.db by earlier versions were copied here (once).
CREATE TABLE legacy_import (
    done_at INTEGER NOT NULL
);
