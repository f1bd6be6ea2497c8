-- Clicks now live in clicks.db (migrations/sqlite_clicks). The click store copies what
-- these tables held into it before this migration runs (it opens first), then they go.
DROP TABLE IF EXISTS click_dims;
DROP TABLE IF EXISTS click_daily;
DROP TABLE IF EXISTS click_events;
