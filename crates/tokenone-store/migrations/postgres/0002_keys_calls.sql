-- API keys and the call log (PostgreSQL).

CREATE TABLE api_keys (
    id                  TEXT PRIMARY KEY,
    project_id          TEXT NOT NULL REFERENCES projects(id),
    tenant_id           TEXT NOT NULL REFERENCES tenants(id),
    name                TEXT NOT NULL,
    mode                TEXT NOT NULL CHECK (mode IN ('live','dev')),
    prefix              TEXT NOT NULL,
    last4               TEXT NOT NULL,
    key_hash            TEXT NOT NULL UNIQUE,
    scopes              TEXT NOT NULL,
    rate_limits         TEXT NOT NULL DEFAULT '{}',
    ip_allowlist        TEXT NOT NULL DEFAULT '[]',
    created_at          BIGINT NOT NULL,
    created_by          TEXT,
    last_used_at        BIGINT,
    expires_at          BIGINT,
    revoked_at          BIGINT
);
CREATE INDEX api_keys_project ON api_keys(project_id, created_at);

-- One row per proxy call, written exactly once (the id is the call id).
CREATE TABLE calls (
    id                   TEXT PRIMARY KEY,
    at                   BIGINT NOT NULL,
    tenant_id            TEXT NOT NULL,
    project_id           TEXT NOT NULL,
    key_id               TEXT NOT NULL,
    mode                 TEXT NOT NULL,
    shape                TEXT NOT NULL,
    requested_model      TEXT NOT NULL,
    requested_tier       TEXT,
    needed_tier          TEXT,
    delivered_model      TEXT,
    provider             TEXT,
    tier                 TEXT,
    routed               BIGINT NOT NULL DEFAULT 0,
    fallback_used        BIGINT NOT NULL DEFAULT 0,
    reasons              TEXT NOT NULL DEFAULT '[]',
    shadow_pick          TEXT,
    stream               BIGINT NOT NULL DEFAULT 0,
    input_tokens         BIGINT NOT NULL DEFAULT 0,
    cached_input_tokens  BIGINT NOT NULL DEFAULT 0,
    output_tokens        BIGINT NOT NULL DEFAULT 0,
    usage_estimated      BIGINT NOT NULL DEFAULT 0,
    burn_tokens          BIGINT NOT NULL DEFAULT 0,
    savings_tokens       BIGINT NOT NULL DEFAULT 0,
    pass_back_tokens     BIGINT NOT NULL DEFAULT 0,
    uncollected_tokens   BIGINT NOT NULL DEFAULT 0,
    latency_ms           BIGINT NOT NULL DEFAULT 0,
    status               BIGINT NOT NULL,
    error_code           TEXT
);
CREATE INDEX calls_project_at ON calls(project_id, at);
CREATE INDEX calls_tenant_at ON calls(tenant_id, at);
CREATE INDEX calls_at ON calls(at);
