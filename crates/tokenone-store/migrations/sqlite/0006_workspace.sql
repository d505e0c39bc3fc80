-- The delivery workspace (SQLite): stored project events with a per-project sequence, and the
-- records of cold-storage archives.

-- Events kept for SSE replay (`Last-Event-ID`); `seq` is the project's sequence number.
CREATE TABLE project_events (
    id             TEXT PRIMARY KEY,
    project_id     TEXT NOT NULL,
    seq            BIGINT NOT NULL,
    tenant_id      TEXT NOT NULL,
    type           TEXT NOT NULL,
    actor_user_id  TEXT,
    at             BIGINT NOT NULL,
    payload        TEXT NOT NULL,
    UNIQUE (project_id, seq)
);

-- The last sequence number given out per project; its row is updated in the transaction that
-- stores the events, so replicas never hand out the same number twice.
CREATE TABLE project_event_counters (
    project_id  TEXT PRIMARY KEY,
    seq         BIGINT NOT NULL
);

-- A project's bulky history moved out of the hot tables into a zstd JSON-lines file in the blob
-- directory (`path` is relative to it), with the SHA-256 of the file's bytes.
CREATE TABLE cold_archives (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects(id),
    tenant_id    TEXT NOT NULL,
    path         TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    bytes        BIGINT NOT NULL,
    call_rows    BIGINT NOT NULL,
    event_rows   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT,
    restored_at  BIGINT
);
CREATE INDEX cold_archives_project ON cold_archives(project_id, created_at);
