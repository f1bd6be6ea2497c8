-- Tenants and their API keys live in the directory shard (every shard gets the tables,
-- as with `aliases`, so all shards share one schema version). A key is stored only as
-- the SHA-256 of its secret part; the secret itself is shown once, at creation.
CREATE TABLE tenants (
    id                  BIGSERIAL   PRIMARY KEY,
    name                TEXT        NOT NULL UNIQUE,
    -- Links one key of this tenant may create per minute; NULL = the configured default.
    shorten_per_minute  INTEGER     NULL CHECK (shorten_per_minute > 0),
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          BIGSERIAL   PRIMARY KEY,
    tenant_id   BIGINT      NOT NULL REFERENCES tenants (id),
    secret_hash BYTEA       NOT NULL CHECK (length(secret_hash) = 32),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at  TIMESTAMPTZ NULL
);

-- The tenant that created a link (NULL: created anonymously). Adding a nullable column
-- without a default does not rewrite the table.
ALTER TABLE links ADD COLUMN tenant_id BIGINT NULL;

-- Listing a tenant's links newest first: an index range scan per shard.
CREATE INDEX links_tenant_newest ON links (tenant_id, id DESC)
    WHERE tenant_id IS NOT NULL AND deleted_at IS NULL;
