-- Every shard gets the same schema; only the directory shard's `aliases` is used.

-- Links of this shard's ID range. The ID is a Snowflake (time-ordered), so inserts
-- append to the right edge of the primary key index.
CREATE TABLE links (
    id          BIGINT      PRIMARY KEY,
    alias       TEXT        NULL,
    url         TEXT        NOT NULL,
    redirect    SMALLINT    NOT NULL DEFAULT 302 CHECK (redirect IN (301, 302)),
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NULL,
    deleted_at  TIMESTAMPTZ NULL
);

-- Directory: custom alias -> link ID. A deleted link keeps its alias reserved so the
-- alias keeps answering 410 instead of silently pointing somewhere new.
CREATE TABLE aliases (
    alias       TEXT        PRIMARY KEY,
    link_id     BIGINT      NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
