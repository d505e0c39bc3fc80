-- Connectors and pending OAuth round trips (PostgreSQL). Credentials are sealed by the vault; revoking
-- a connector sets `sealed` to NULL (the ciphertext is destroyed, the metadata kept).

CREATE TABLE connectors (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    project_id    TEXT NOT NULL REFERENCES projects(id),
    type          TEXT NOT NULL,
    category      TEXT NOT NULL,
    name          TEXT NOT NULL,
    display       TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active','revoked')),
    scopes        TEXT NOT NULL DEFAULT '[]',
    sealed        BYTEA,
    created_at    BIGINT NOT NULL,
    created_by    TEXT REFERENCES users(id),
    last_used_at  BIGINT,
    revoked_at    BIGINT,
    CHECK ((status = 'active') = (sealed IS NOT NULL))
);
CREATE INDEX connectors_project ON connectors(project_id, status, created_at);

-- Only the SHA-256 of a state is stored; the PKCE verifier is sealed, bound to the state's user,
-- project and provider. A state is deleted by its first use.
CREATE TABLE oauth_states (
    state_hash       TEXT PRIMARY KEY,
    provider         TEXT NOT NULL,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    project_id       TEXT NOT NULL REFERENCES projects(id),
    user_id          TEXT NOT NULL REFERENCES users(id),
    sealed_verifier  BYTEA NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX oauth_states_expires ON oauth_states(expires_at);
