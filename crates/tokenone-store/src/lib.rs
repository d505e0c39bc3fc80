//! Storage for TokenOne on SQLite (embedded default) and PostgreSQL (scale-out), chosen once at
//! start-up by the `DATABASE_URL` scheme. Each backend has its own migrations; queries are written
//! in the SQL both understand (numbered `$n` parameters, `RETURNING`, `ON CONFLICT`), with ids as
//! text, times as epoch milliseconds and booleans as 0/1, so one implementation serves both and
//! the same integration tests exercise both. Rules live in the services, not here: the store
//! offers atomic mechanisms (guarded updates, conditional inserts) and reports what happened.

mod admin;
mod connectors;
mod identity;
mod keys;
mod probe;
mod projects;
mod router;
mod rows;
mod wallet;
mod workspace;

use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};
use std::str::FromStr;
use std::time::Duration;
use tokenone_core::model::AuditEntry;
use tokenone_core::repo::{AuditRepo, SecretRepo, Store};
use tokenone_core::{Error, Result};

pub use probe::SqlxProbe;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// The SQL store. On SQLite all writes go through a single connection (SQLite has one writer;
/// queuing in the pool beats `SQLITE_BUSY` retries) while reads use a pool; on PostgreSQL both
/// are the same pool.
#[derive(Clone)]
pub struct SqlStore {
    write: AnyPool,
    read: AnyPool,
    backend: Backend,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// Maps a driver error to the domain: duplicates are conflicts, an unreachable database is
/// "unavailable", everything else internal (logged by the caller, never shown).
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => Error::conflict("duplicate"),
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            tracing::error!(error = %e, "database unavailable");
            Error::Unavailable("database unavailable".into())
        }
        _ => Error::internal(e),
    }
}

type ConnectFuture<'c> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>>;

/// WAL for concurrent readers, a busy timeout, and foreign keys, on every SQLite connection.
fn sqlite_pragmas(conn: &mut sqlx::AnyConnection, _meta: sqlx::pool::PoolConnectionMetadata) -> ConnectFuture<'_> {
    Box::pin(async move {
        conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;")
            .await?;
        yield_sqlite_workers();
        Ok(())
    })
}

/// Nice value of sqlx's SQLite worker threads. At 10 they got too little of a saturated core: the
/// call writer fell behind, and the event queue (up to 65,536 events) pushed RSS to 164 MiB. At 4
/// they keep up (backlog ~100 at saturation) and still yield to a waking handler.
#[cfg(target_os = "linux")]
const SQLITE_WORKER_NICE: libc::c_int = 4;

/// Lowers the priority of sqlx's SQLite worker threads (one per connection; the connection's
/// worker exists by the time `after_connect` runs).
///
/// Why: a worker runs a statement to its end on its own thread, and on a gateway pinned to one
/// core `perf sched` showed the tokio worker waiting up to 4.4 ms for it, because the scheduler
/// does not always preempt a thread of equal weight when another wakes. At a lower weight the
/// statement's deadline is later, so a waking request handler runs first. The workers still get
/// their share when the core is busy, and at saturation the call writer's door
/// (proxy/writer.rs) holds new calls back until they catch up. Lowering a thread of one's own
/// process needs no privilege. Elsewhere than Linux this does nothing.
fn yield_sqlite_workers() {
    #[cfg(target_os = "linux")]
    for tid in sqlite_worker_tids() {
        // SAFETY: setpriority only reads its arguments; with PRIO_PROCESS and a thread id it
        // changes that thread's nice value, or fails (ignored: it is an optimisation).
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, tid, SQLITE_WORKER_NICE);
        }
    }
}

/// The thread ids of this process's sqlx SQLite workers. sqlx has no hook for its threads, so
/// they are found by name (`sqlx-sqlite-worker-N`, which the kernel cuts to 15 bytes).
#[cfg(target_os = "linux")]
fn sqlite_worker_tids() -> Vec<libc::id_t> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.starts_with("sqlx-sqlite-wor"))
        })
        .filter_map(|task| task.file_name().to_str().and_then(|t| t.parse().ok()))
        .collect()
}

fn sqlite_url(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// Splits `rows` for multi-row statements: chunks of 64 or 32 rows, then 16, then the rest
/// (1 to 16) in one chunk. A statement's text depends on its row count, and sqlx keeps 100
/// prepared statements per connection: with any count up to 100 allowed, the varying batch sizes
/// of the call writer and the event hub pushed each other out of that cache, and a statement of
/// 100 rows was parsed again for most batches (~0.5 M instructions each, 5 % of the gateway's
/// instructions per call under callgrind). From this fixed set of 18 sizes per statement, every
/// one stays prepared. Well under both databases' parameter limits (64 rows of 30 columns).
pub(crate) fn row_chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        let n = match rest.len() {
            0 => return None,
            n if n >= 64 => 64,
            n if n >= 32 => 32,
            n if n > 16 => 16,
            n => n,
        };
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

/// `n` parameter placeholders separated by `", "`, numbered from `$first` on PostgreSQL;
/// anonymous `?` on SQLite, so they must be bound in the order they appear in the statement.
/// SQLite keeps numbered parameters in a list that `sqlite3_bind_parameter_name` walks once per
/// parameter (sqlx asks for every name while binding), which made a 3,000-parameter statement
/// quadratic: 40 % of the gateway's CPU at load.
pub(crate) fn placeholders(backend: Backend, first: usize, n: usize) -> String {
    let mut out = String::with_capacity(n * 5);
    push_placeholders(&mut out, backend, first, n);
    out
}

fn push_placeholders(out: &mut String, backend: Backend, first: usize, n: usize) {
    for i in 0..n {
        if i > 0 {
            out.push_str(", ");
        }
        match backend {
            Backend::Sqlite => out.push('?'),
            Backend::Postgres => {
                out.push('$');
                out.push_str(&(first + i).to_string());
            }
        }
    }
}

/// `($1, ..., $cols), ($cols+1, ...)` for `rows` rows: see `placeholders` (anonymous `?` on
/// SQLite, bound row by row in column order).
pub(crate) fn values(backend: Backend, rows: usize, cols: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        push_placeholders(&mut out, backend, r * cols + 1, cols);
        out.push(')');
    }
    out
}

impl SqlStore {
    /// Connects and runs the backend's migrations.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<SqlStore> {
        let store = Self::connect_only(url, max_connections).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without migrating.
    pub async fn connect_only(url: &str, max_connections: u32) -> anyhow::Result<SqlStore> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)
            .ok_or_else(|| anyhow::anyhow!("database url must start with sqlite:, postgres:// or postgresql://"))?;
        let max = max_connections.max(2);
        match backend {
            Backend::Sqlite => {
                let url = sqlite_url(url);
                let opts = sqlx::any::AnyConnectOptions::from_str(&url)?;
                let write = AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(sqlite_pragmas)
                    .connect_with(opts.clone())
                    .await?;
                let read = AnyPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(sqlite_pragmas)
                    .connect_with(opts)
                    .await?;
                Ok(SqlStore { write, read, backend })
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?;
                Ok(SqlStore {
                    write: pool.clone(),
                    read: pool,
                    backend,
                })
            }
        }
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.write).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.write).await?,
        }
        Ok(())
    }

    pub fn kind(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    pub(crate) fn w(&self) -> &AnyPool {
        &self.write
    }
    pub(crate) fn r(&self) -> &AnyPool {
        &self.read
    }
}

#[async_trait]
impl AuditRepo for SqlStore {
    async fn append_audit(&self, e: &AuditEntry) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (id, at, actor_id, actor_email, action, target, old_value, new_value, reason, request_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(e.id.to_string())
        .bind(e.at)
        .bind(e.actor.as_ref().map(|a| a.id.to_string()))
        .bind(e.actor.as_ref().map(|a| a.email.clone()))
        .bind(e.action.clone())
        .bind(e.target.clone())
        .bind(e.old_value.as_ref().map(|v| v.to_string()))
        .bind(e.new_value.as_ref().map(|v| v.to_string()))
        .bind(e.reason.clone())
        .bind(e.request_id.clone())
        .execute(self.w())
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

#[async_trait]
impl SecretRepo for SqlStore {
    async fn server_secret(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let row: Option<AnyRow> = sqlx::query("SELECT sealed FROM server_secrets WHERE name = $1")
            .bind(name.to_string())
            .fetch_optional(self.w())
            .await
            .map_err(db_err)?;
        row.map(|r| rows::get::<Vec<u8>>(&r, "sealed")).transpose()
    }

    async fn put_server_secret(&self, name: &str, sealed: &[u8], now: i64) -> Result<Vec<u8>> {
        sqlx::query(
            "INSERT INTO server_secrets (name, sealed, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name.to_string())
        .bind(sealed.to_vec())
        .bind(now)
        .execute(self.w())
        .await
        .map_err(db_err)?;
        self.server_secret(name)
            .await?
            .ok_or_else(|| Error::internal(anyhow::anyhow!("server secret vanished after insert")))
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    fn connections(&self) -> u32 {
        match self.backend {
            Backend::Sqlite => self.write.size() + self.read.size(),
            Backend::Postgres => self.read.size(),
        }
    }

    async fn ready(&self) -> Result<()> {
        sqlx::query("SELECT COUNT(*) FROM tenants")
            .execute(self.r())
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn row_chunks_come_in_few_sizes_and_keep_every_row_in_order() {
        let mut sizes = std::collections::BTreeSet::new();
        for n in 0..=600usize {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = super::row_chunks(&rows).collect();
            assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= 64), "{n}");
            assert_eq!(chunks.concat(), rows, "{n}");
            // At most one chunk below 16 rows, and it comes last.
            assert!(chunks.iter().rev().skip(1).all(|c| c.len() >= 16), "{n}");
            sizes.extend(chunks.iter().map(|c| c.len()));
        }
        let expected: std::collections::BTreeSet<usize> = (1..=16).chain([32, 64]).collect();
        assert_eq!(sizes, expected);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn sqlite_workers_yield_to_the_request_handlers() {
        // The only test in this binary that opens SQLite, so every worker thread is this store's.
        let store = super::SqlStore::connect_only("sqlite::memory:", 2).await.unwrap();
        let nices: Vec<libc::c_int> = super::sqlite_worker_tids()
            .into_iter()
            // SAFETY: getpriority only reads its arguments.
            .map(|tid| unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) })
            .collect();
        assert!(!nices.is_empty(), "a connected store has worker threads");
        assert!(nices.iter().all(|n| *n == super::SQLITE_WORKER_NICE), "{nices:?}");
        store.close().await;
    }
}
