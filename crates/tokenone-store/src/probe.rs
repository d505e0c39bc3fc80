//! The connection test of database connectors: connect (PostgreSQL or MySQL/MariaDB) and run
//! `SELECT 1`, within 5 seconds, reporting only success or failure.

use async_trait::async_trait;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use std::time::Duration;
use tokenone_core::connectors::{DatabaseProbe, DbKind, ProbeTarget};

/// Connects with sqlx. No pgpass file is read, nothing but the checked host is dialled, and no
/// error detail leaves this function (it could carry a server banner).
#[derive(Debug, Clone, Copy, Default)]
pub struct SqlxProbe;

async fn run(t: &ProbeTarget) -> Result<(), sqlx::Error> {
    match t.kind {
        DbKind::Postgres => {
            let mut opts = PgConnectOptions::new_without_pgpass()
                .host(&t.host)
                .port(t.port)
                .username(&t.user)
                .application_name("tokenone-connector-test")
                .disable_statement_logging();
            if !t.password.is_empty() {
                opts = opts.password(t.password.expose());
            }
            if !t.database.is_empty() {
                opts = opts.database(&t.database);
            }
            if let Some(mode) = t.ssl_mode.as_deref().and_then(|m| PgSslMode::from_str(m).ok()) {
                opts = opts.ssl_mode(mode);
            }
            let mut conn = PgConnection::connect_with(&opts).await?;
            sqlx::query("SELECT 1").execute(&mut conn).await?;
            conn.close().await
        }
        DbKind::Mysql => {
            let mut opts = MySqlConnectOptions::new()
                .host(&t.host)
                .port(t.port)
                .username(&t.user)
                .disable_statement_logging();
            if !t.password.is_empty() {
                opts = opts.password(t.password.expose());
            }
            if !t.database.is_empty() {
                opts = opts.database(&t.database);
            }
            if let Some(mode) = t
                .ssl_mode
                .as_deref()
                .and_then(|m| MySqlSslMode::from_str(&m.replace('-', "_")).ok())
            {
                opts = opts.ssl_mode(mode);
            }
            let mut conn = MySqlConnection::connect_with(&opts).await?;
            sqlx::query("SELECT 1").execute(&mut conn).await?;
            conn.close().await
        }
    }
}

#[async_trait]
impl DatabaseProbe for SqlxProbe {
    async fn probe(&self, target: &ProbeTarget) -> bool {
        match tokio::time::timeout(Duration::from_secs(5), run(target)).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) | Err(_) => {
                tracing::info!(kind = ?target.kind, "database connector test failed");
                false
            }
        }
    }
}
