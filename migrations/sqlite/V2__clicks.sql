-- See migrations/postgres/V2__clicks.sql. Times are Unix milliseconds, days 'YYYY-MM-DD'.
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

CREATE TABLE click_daily (
    link_id  INTEGER NOT NULL,
    day      TEXT    NOT NULL,
    total    INTEGER NOT NULL,
    bots     INTEGER NOT NULL,
    PRIMARY KEY (link_id, day)
) WITHOUT ROWID;

CREATE TABLE click_dims (
    link_id  INTEGER NOT NULL,
    day      TEXT    NOT NULL,
    dim      TEXT    NOT NULL,
    value    TEXT    NOT NULL,
    total    INTEGER NOT NULL,
    PRIMARY KEY (link_id, dim, day, value)
) WITHOUT ROWID;
