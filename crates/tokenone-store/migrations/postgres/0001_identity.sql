-- Identity, projects, membership, audit, server secrets and the wallet row (PostgreSQL).
-- Ids are UUID text, timestamps integer epoch milliseconds, booleans 0/1, JSON as text.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    email           TEXT NOT NULL,
    email_key       TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    tenant_role     TEXT NOT NULL CHECK (tenant_role IN ('owner','admin','member')),
    platform_admin  BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX users_tenant ON users(tenant_id);

CREATE TABLE auth_families (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX auth_families_user ON auth_families(user_id);

CREATE TABLE refresh_tokens (
    id          TEXT PRIMARY KEY,
    family_id   TEXT NOT NULL REFERENCES auth_families(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);

CREATE TABLE login_failures (
    id          TEXT PRIMARY KEY,
    email_key   TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX login_failures_email_at ON login_failures(email_key, at);

CREATE TABLE projects (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    tags          TEXT NOT NULL DEFAULT '[]',
    stage         TEXT NOT NULL DEFAULT 'build' CHECK (stage IN ('build','live')),
    archived      BIGINT NOT NULL DEFAULT 0,
    storage_tier  TEXT NOT NULL DEFAULT 'hot' CHECK (storage_tier IN ('hot','cold')),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    created_by    TEXT REFERENCES users(id)
);
CREATE INDEX projects_tenant ON projects(tenant_id, created_at);

CREATE TABLE project_members (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    user_id     TEXT REFERENCES users(id),
    email       TEXT NOT NULL,
    email_key   TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('owner','admin','developer','viewer')),
    status      TEXT NOT NULL CHECK (status IN ('active','invited')),
    invited_at  BIGINT NOT NULL,
    joined_at   BIGINT,
    UNIQUE (project_id, email_key)
);
CREATE INDEX project_members_user ON project_members(user_id);

CREATE TABLE invites (
    token_hash   TEXT PRIMARY KEY,
    member_id    TEXT NOT NULL,
    project_id   TEXT NOT NULL REFERENCES projects(id),
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    email        TEXT NOT NULL,
    role         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    accepted_at  BIGINT
);
CREATE INDEX invites_member ON invites(member_id);

CREATE TABLE server_secrets (
    name        TEXT PRIMARY KEY,
    sealed      BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE audit_log (
    id           TEXT PRIMARY KEY,
    at           BIGINT NOT NULL,
    actor_id     TEXT,
    actor_email  TEXT,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    old_value    TEXT,
    new_value    TEXT,
    reason       TEXT,
    request_id   TEXT
);
CREATE INDEX audit_log_action ON audit_log(action, id);

-- Audit rows are append-only: the database refuses edits and deletes.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit_log is append-only'; END; $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE wallets (
    tenant_id        TEXT PRIMARY KEY REFERENCES tenants(id),
    balance_tokens   BIGINT NOT NULL DEFAULT 0 CHECK (balance_tokens >= 0),
    reserved_tokens  BIGINT NOT NULL DEFAULT 0 CHECK (reserved_tokens >= 0),
    updated_at       BIGINT NOT NULL
);
