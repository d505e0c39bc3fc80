-- Wallet leases, the signed ledger, idempotency keys, daily roll-ups, settings and levers (SQLite).

-- Tokens of the balance carved out into replicas' leases; always <= balance_tokens.
ALTER TABLE wallets ADD COLUMN leased_tokens BIGINT NOT NULL DEFAULT 0;

-- A replica's lease on a tenant's balance: `amount` granted in total, `consumed` by settled
-- calls, `returned` unused. What is neither consumed nor returned is still held by the replica.
CREATE TABLE wallet_leases (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    replica_id   TEXT NOT NULL,
    amount       BIGINT NOT NULL DEFAULT 0,
    consumed     BIGINT NOT NULL DEFAULT 0,
    returned     BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    released_at  BIGINT
);
CREATE INDEX wallet_leases_open ON wallet_leases(released_at, expires_at);

-- Append-only, double-entry, hash-chained per tenant.
CREATE TABLE ledger_entries (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    at              BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    call_id         TEXT,
    debit_account   TEXT NOT NULL,
    credit_account  TEXT NOT NULL,
    amount_tokens   BIGINT NOT NULL CHECK (amount_tokens >= 0),
    memo            TEXT NOT NULL DEFAULT '',
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL,
    signature       TEXT NOT NULL,
    UNIQUE (tenant_id, seq)
);
CREATE INDEX ledger_entries_call ON ledger_entries(call_id);
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END;

-- The head of each tenant's chain; its row is the lock that serialises appends.
CREATE TABLE ledger_heads (
    tenant_id  TEXT PRIMARY KEY,
    seq        BIGINT NOT NULL,
    hash       TEXT NOT NULL
);

CREATE TABLE idempotency_keys (
    key           TEXT PRIMARY KEY,
    scope         TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    response      TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

-- Incremental roll-ups, maintained by the call writer in the same transaction as the calls.
CREATE TABLE rollups_daily (
    tenant_id           TEXT NOT NULL,
    project_id          TEXT NOT NULL,
    day                 TEXT NOT NULL,
    mode                TEXT NOT NULL,
    requested_model     TEXT NOT NULL,
    delivered_model     TEXT NOT NULL,
    calls               BIGINT NOT NULL DEFAULT 0,
    routed_calls        BIGINT NOT NULL DEFAULT 0,
    shadow_calls        BIGINT NOT NULL DEFAULT 0,
    input_tokens        BIGINT NOT NULL DEFAULT 0,
    output_tokens       BIGINT NOT NULL DEFAULT 0,
    burn_tokens         BIGINT NOT NULL DEFAULT 0,
    savings_tokens      BIGINT NOT NULL DEFAULT 0,
    shadow_savings_tokens BIGINT NOT NULL DEFAULT 0,
    pass_back_tokens    BIGINT NOT NULL DEFAULT 0,
    uncollected_tokens  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, project_id, day, mode, requested_model, delivered_model)
);

-- Runtime settings (secret values sealed by the vault) and commercial levers.
CREATE TABLE settings (
    key         TEXT PRIMARY KEY,
    value       TEXT,
    sealed      BLOB,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT
);

CREATE TABLE levers (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT
);

CREATE TABLE lever_history (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    at          BIGINT NOT NULL,
    actor_id    TEXT,
    actor_email TEXT,
    old_value   TEXT,
    new_value   TEXT NOT NULL,
    reason      TEXT NOT NULL
);
CREATE INDEX lever_history_name ON lever_history(name, id);

-- A version counter per kind of runtime state (levers, settings, router), bumped on every change;
-- replicas poll it (and listen on Redis) to refresh their caches.
CREATE TABLE runtime_versions (
    kind     TEXT PRIMARY KEY,
    version  BIGINT NOT NULL
);
INSERT INTO runtime_versions (kind, version) VALUES ('levers', 1), ('settings', 1), ('router', 1);

CREATE TABLE router_state (
    id           BIGINT PRIMARY KEY,
    mode         TEXT NOT NULL,
    rollout_pct  BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    updated_by   TEXT,
    reason       TEXT
);
INSERT INTO router_state (id, mode, rollout_pct, updated_at) VALUES (1, 'on', 100, 0);
