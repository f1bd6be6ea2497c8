-- Unique visitors per link and day. A visitor is a keyed hash of the client's address
-- and user agent under a salt that lives one UTC day and is never stored (see
-- domain::visitor): the hashes of a past day cannot be tied to anyone.
--
-- click_visitors holds each (link, day)'s distinct hashes while that day can still
-- receive clicks (late flushes, redeliveries); a flush inserts its distinct visitors
-- with ON CONFLICT DO NOTHING and adds exactly the new ones to click_daily.visitors in
-- the same transaction, so the same visitor in two flushes, from two workers or two
-- instances counts once. The worker deletes a day's hashes once the day is older than
-- analytics.unit_retention_hours; the count in click_daily stays.
ALTER TABLE click_daily ADD COLUMN visitors BIGINT NOT NULL DEFAULT 0;

CREATE TABLE click_visitors (
    link_id BIGINT NOT NULL,
    day     DATE   NOT NULL,
    visitor BIGINT NOT NULL,
    PRIMARY KEY (link_id, day, visitor)
);
CREATE INDEX click_visitors_day ON click_visitors USING brin (day);
