-- Leased worker IDs: which instance may mint Snowflake IDs with which worker ID, until
-- when (the database's clock decides expiry, so instances' clocks need not agree). Used
-- in the directory shard (every shard gets the table, as with `code_scheme`).
--
-- `minted_until_ms` is the last millisecond (Unix, in the holder's ID clock) at which
-- the holder may stamp IDs under its current lease: an instance that takes the worker
-- ID over mints nothing at or before it.
CREATE TABLE worker_leases (
    worker_id       SMALLINT    PRIMARY KEY CHECK (worker_id BETWEEN 0 AND 1023),
    holder          TEXT        NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    minted_until_ms BIGINT      NOT NULL DEFAULT 0,
    acquired_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
