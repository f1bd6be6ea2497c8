-- Clicks live on the shard of the link they belong to.

-- Raw events, kept for `analytics.retention_days`. The primary key on the event ID is
-- what makes counting exactly-once: a redelivered event conflicts and is not counted.
CREATE TABLE click_events (
    event_id   BIGINT      PRIMARY KEY,
    link_id    BIGINT      NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    referrer   TEXT        NOT NULL,
    browser    TEXT        NOT NULL,
    os         TEXT        NOT NULL,
    device     TEXT        NOT NULL,
    bot        BOOLEAN     NOT NULL,
    client     TEXT        NOT NULL
);
CREATE INDEX click_events_at ON click_events (at);

-- Rollups: what the stats API reads. Never pruned.
CREATE TABLE click_daily (
    link_id  BIGINT NOT NULL,
    day      DATE   NOT NULL,
    total    BIGINT NOT NULL,
    bots     BIGINT NOT NULL,
    PRIMARY KEY (link_id, day)
);

-- Per link, per day, per dimension (referrer, browser, os, device) value.
CREATE TABLE click_dims (
    link_id  BIGINT NOT NULL,
    day      DATE   NOT NULL,
    dim      TEXT   NOT NULL,
    value    TEXT   NOT NULL,
    total    BIGINT NOT NULL,
    PRIMARY KEY (link_id, dim, day, value)
);
