-- The embedded store: one SQLite file holds links and aliases. Times are Unix
-- milliseconds.
CREATE TABLE links (
    id          INTEGER PRIMARY KEY,
    alias       TEXT    NULL,
    url         TEXT    NOT NULL,
    redirect    INTEGER NOT NULL DEFAULT 302 CHECK (redirect IN (301, 302)),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NULL,
    deleted_at  INTEGER NULL
);

CREATE TABLE aliases (
    alias       TEXT    PRIMARY KEY,
    link_id     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;
