-- How this deployment's generated codes are made: the check value of the code key and
-- the ID below which links keep the plain Base62 codes they were handed out with
-- (links made before codes were keyed). One row, written once, in the directory shard
-- (every shard gets the table, as with `aliases`, so all shards share one schema
-- version).
CREATE TABLE code_scheme (
    id          SMALLINT    PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    key_check   TEXT        NOT NULL,
    plain_below BIGINT      NOT NULL CHECK (plain_below >= 0),
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- An operator's takedown (`shortener links disable`): the link answers 410 until it is
-- enabled again. Nullable without a default, so adding it does not rewrite the table.
ALTER TABLE links ADD COLUMN disabled_at TIMESTAMPTZ NULL;
