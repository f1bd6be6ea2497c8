-- Tenants and their API keys (the key's secret only as a SHA-256), and the tenant that
-- created each link (NULL: anonymous). Times are Unix milliseconds.
CREATE TABLE tenants (
    id                  INTEGER PRIMARY KEY,
    name                TEXT    NOT NULL UNIQUE,
    shorten_per_minute  INTEGER NULL CHECK (shorten_per_minute > 0),
    created_at          INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenants (id),
    secret_hash BLOB    NOT NULL CHECK (length(secret_hash) = 32),
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER NULL
);

ALTER TABLE links ADD COLUMN tenant_id INTEGER NULL;

CREATE INDEX links_tenant_newest ON links (tenant_id, id DESC)
    WHERE tenant_id IS NOT NULL AND deleted_at IS NULL;
