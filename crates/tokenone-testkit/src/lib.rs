//! Test support: [`TestApp`] starts the real server in-process on `127.0.0.1:0` against a fresh
//! database — a SQLite file in a temporary directory, or a new PostgreSQL database with Redis — and speaks
//! HTTP to it. [`both_backends!`] turns one test body into a SQLite and a PostgreSQL test.

pub mod mock;
pub mod oauth;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;
use tokenone_core::config::Config;
use tokenone_core::secret::Secret;
use tokenone_core::vault::MasterKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const ADMIN_EMAIL: &str = "admin@tokenone.test";
pub const ADMIN_PASSWORD: &str = "admin-password-123";

/// The PostgreSQL server tests create their databases on (`TOKENONE_TEST_PG_URL`).
pub fn pg_server_url() -> String {
    std::env::var("TOKENONE_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The Redis the PostgreSQL tests use (`TOKENONE_TEST_REDIS_URL`).
pub fn redis_url() -> String {
    std::env::var("TOKENONE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A fresh, empty PostgreSQL database; returns its URL.
pub async fn fresh_pg_database() -> String {
    let server = pg_server_url();
    let name = format!("tokenone_t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&format!("{server}/test"))
        .await
        .expect("PostgreSQL must be reachable for the tests (TOKENONE_TEST_PG_URL)");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let _ = conn.close().await;
    format!("{server}/{name}")
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub backend: Backend,
    pub db_url: String,
    /// The vault master key (base64); a second replica of the same installation needs it.
    pub master_key: String,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// An HTTP answer: status, headers, and the body parsed as JSON (`Value::Null` when it is not).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
    /// Asserts the failure envelope with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(self.body["success"], json!(false), "body: {}", self.text);
        assert_eq!(self.body["code"], json!(code), "body: {}", self.text);
        assert!(
            self.body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "body: {}",
            self.text
        );
    }
    #[track_caller]
    pub fn assert_ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(self.body["success"], json!(true), "body: {}", self.text);
        &self.body["data"]
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// All `Set-Cookie` values.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }
    /// The value a `Set-Cookie` gives `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies().iter().find_map(|c| {
            let first = c.split(';').next()?;
            let (k, v) = first.split_once('=')?;
            (k.trim() == name).then(|| v.to_string())
        })
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Starts a server; `tweak` adjusts the configuration first.
    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let db_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("tokenone.db").display()),
            Backend::Postgres => fresh_pg_database().await,
        };
        let mut cfg = Config::default();
        cfg.database.url = Secret::new(db_url.clone());
        cfg.database.max_connections = 4;
        let master_key = MasterKey::generate().to_base64();
        cfg.vault.master_key = Secret::new(master_key.clone());
        cfg.admin.email = ADMIN_EMAIL.into();
        cfg.admin.password = Secret::new(ADMIN_PASSWORD);
        cfg.storage.cold_dir = dir.path().join("cold").display().to_string();
        if backend == Backend::Postgres {
            // The scale-out pair: PostgreSQL with Redis.
            cfg.redis.url = Secret::new(redis_url());
        }
        tweak(&mut cfg);
        let master_key = cfg.vault.master_key.expose().to_string();
        let db_url = cfg.database.url.expose().to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        cfg.server.bind = addr.to_string();
        let state = tokenone_server::build_state(cfg).await.expect("build state");
        tokenone_server::bootstrap(&state).await.expect("bootstrap");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(tokenone_server::serve_state(state, listener, async move {
            let _ = rx.await;
        }));
        TestApp {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            backend,
            db_url,
            master_key,
            dir,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Another replica of this installation: same database (and Redis, on PostgreSQL), same
    /// master key, its own port.
    pub async fn replica(&self, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let (db, key) = (self.db_url.clone(), self.master_key.clone());
        Self::spawn_with(self.backend, move |c| {
            c.database.url = Secret::new(db);
            c.vault.master_key = Secret::new(key);
            tweak(c);
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::answer(req.send().await.expect("request")).await
    }

    pub async fn answer(resp: reqwest::Response) -> Answer {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call(Method::GET, path, token, None).await
    }
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.call(Method::POST, path, token, Some(body)).await
    }
    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.call(Method::PATCH, path, token, Some(body)).await
    }
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Answer {
        self.call(Method::DELETE, path, token, None).await
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let a = self
            .post("/api/auth/login", None, json!({"email": email, "password": password}))
            .await;
        a.assert_ok(200)["tokens"]["accessToken"]
            .as_str()
            .expect("access token")
            .to_string()
    }

    pub async fn admin_token(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Registers a new tenant owner; returns (access token, user id, tenant id).
    pub async fn register(&self, email: &str) -> (String, String, String) {
        let a = self
            .post(
                "/api/auth/register",
                None,
                json!({"email": email, "password": "password-123", "name": email.split('@').next().unwrap_or("user")}),
            )
            .await;
        let d = a.assert_ok(201);
        (
            d["tokens"]["accessToken"].as_str().expect("token").to_string(),
            d["user"]["id"].as_str().expect("id").to_string(),
            d["user"]["tenantId"].as_str().expect("tenant").to_string(),
        )
    }

    /// Creates a project; returns its id.
    pub async fn create_project(&self, token: &str, name: &str) -> String {
        let a = self
            .post("/api/tokenone/projects", Some(token), json!({"name": name}))
            .await;
        a.assert_ok(201)["id"].as_str().expect("project id").to_string()
    }

    /// Stops the server and waits for it to finish draining.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Generates `mod sqlite` and `mod postgres`, each with one `#[tokio::test]` per listed async
/// function `fn(TestApp)` of the enclosing module.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::TestApp::spawn($crate::Backend::Sqlite).await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::TestApp::spawn($crate::Backend::Postgres).await).await
                }
            )*
        }
    };
}

/// The three mock vendors, and the configuration that points TokenOne at them.
pub struct Upstreams {
    pub openai: mock::MockUpstream,
    pub anthropic: mock::MockUpstream,
    pub gemini: mock::MockUpstream,
}

/// The upstream credential the mocks are configured with (never a TokenOne key).
pub const UPSTREAM_KEY: &str = "sk-upstream-credential-1234";

impl Upstreams {
    pub async fn start() -> Upstreams {
        Upstreams {
            openai: mock::MockUpstream::start(mock::Format::OpenAi).await,
            anthropic: mock::MockUpstream::start(mock::Format::Anthropic).await,
            gemini: mock::MockUpstream::start(mock::Format::Gemini).await,
        }
    }

    /// Points openai, fireworks and openrouter at the OpenAI mock, the others at theirs.
    pub fn configure(&self, cfg: &mut Config) {
        for p in [
            &mut cfg.providers.openai,
            &mut cfg.providers.fireworks,
            &mut cfg.providers.openrouter,
        ] {
            p.base_url = self.openai.base_url.clone();
            p.api_key = Secret::new(UPSTREAM_KEY);
        }
        cfg.providers.anthropic.base_url = self.anthropic.base_url.clone();
        cfg.providers.anthropic.api_key = Secret::new(UPSTREAM_KEY);
        cfg.providers.gemini.base_url = self.gemini.base_url.clone();
        cfg.providers.gemini.api_key = Secret::new(UPSTREAM_KEY);
    }
}

impl TestApp {
    /// Runs a query on the app's database and returns the rows as JSON objects (text and
    /// integer columns only), for assertions on what was stored.
    pub async fn rows(&self, sql: &str) -> Vec<Value> {
        use sqlx::{Column, Row};
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.db_url)
            .await
            .expect("connect to test db");
        let rows = sqlx::query(sql).fetch_all(&mut conn).await.expect("query");
        let _ = conn.close().await;
        rows.iter()
            .map(|r| {
                let mut m = serde_json::Map::new();
                for (i, c) in r.columns().iter().enumerate() {
                    let v = if let Ok(v) = r.try_get::<Option<i64>, _>(i) {
                        v.map(Value::from).unwrap_or(Value::Null)
                    } else if let Ok(v) = r.try_get::<Option<String>, _>(i) {
                        v.map(Value::from).unwrap_or(Value::Null)
                    } else {
                        Value::Null
                    };
                    m.insert(c.name().to_string(), v);
                }
                Value::Object(m)
            })
            .collect()
    }

    /// Every value of every table, concatenated, to scan what is stored at rest: on SQLite text,
    /// integers and blobs as they are; on PostgreSQL each row as JSON text (`bytea` shows as
    /// `\\x` and hex, so also look for the hex form of what you search).
    pub async fn dump_database(&self) -> Vec<u8> {
        use sqlx::Row;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.db_url)
            .await
            .expect("connect to test db");
        let mut out = Vec::new();
        let tables_sql = match self.backend {
            Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_sqlx%' ESCAPE '\\'",
            Backend::Postgres => {
                "SELECT tablename::text AS name FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE '\\_sqlx%'"
            }
        };
        let tables: Vec<String> = sqlx::query(tables_sql)
            .fetch_all(&mut conn)
            .await
            .expect("list tables")
            .iter()
            .map(|r| r.get::<String, _>("name"))
            .collect();
        for t in tables {
            out.extend_from_slice(format!("\n== {t}\n").as_bytes());
            match self.backend {
                Backend::Postgres => {
                    let q = format!("SELECT row_to_json(t)::text AS j FROM \"{t}\" t");
                    for r in sqlx::query(&q).fetch_all(&mut conn).await.expect("dump table") {
                        out.extend_from_slice(r.get::<String, _>("j").as_bytes());
                        out.push(b'\n');
                    }
                }
                Backend::Sqlite => {
                    let q = format!("SELECT * FROM \"{t}\"");
                    for r in sqlx::query(&q).fetch_all(&mut conn).await.expect("dump table") {
                        for i in 0..r.len() {
                            if let Ok(Some(v)) = r.try_get::<Option<String>, _>(i) {
                                out.extend_from_slice(v.as_bytes());
                            } else if let Ok(Some(v)) = r.try_get::<Option<Vec<u8>>, _>(i) {
                                out.extend_from_slice(&v);
                            } else if let Ok(Some(v)) = r.try_get::<Option<i64>, _>(i) {
                                out.extend_from_slice(v.to_string().as_bytes());
                            }
                            out.push(b'|');
                        }
                        out.push(b'\n');
                    }
                }
            }
        }
        let _ = conn.close().await;
        out
    }

    /// Executes a statement on the app's database (for setting up states the API cannot reach,
    /// such as an expired key).
    pub async fn exec(&self, sql: &str) {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.db_url)
            .await
            .expect("connect to test db");
        sqlx::query(sql).execute(&mut conn).await.expect("exec");
        let _ = conn.close().await;
    }

    /// Polls `sql` until it returns at least `n` rows (the call writer works asynchronously);
    /// gives up after 10 s.
    pub async fn wait_rows(&self, sql: &str, n: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let rows = self.rows(sql).await;
            if rows.len() >= n || std::time::Instant::now() > deadline {
                return rows;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The tenant of the user behind `token`.
    pub async fn tenant_of(&self, token: &str) -> String {
        let me = self.get("/api/auth/me", Some(token)).await;
        me.assert_ok(200)["tenant"]["id"]
            .as_str()
            .expect("tenant id")
            .to_string()
    }

    /// Tops up `tenant`'s wallet by `tokens` as the platform admin; returns the new balance.
    pub async fn topup(&self, tenant: &str, tokens: u64) -> u64 {
        let admin = self.admin_token().await;
        let key = uuid::Uuid::new_v4().to_string();
        let a = self
            .post(
                &format!("/api/admin/wallets/{tenant}/topup"),
                Some(&admin),
                json!({"tokens": tokens.to_string(), "reason": "test funds", "idempotencyKey": key}),
            )
            .await;
        a.assert_ok(200)["balanceTokens"]
            .as_str()
            .expect("balance")
            .parse()
            .expect("number")
    }

    /// Flips the smart-router switch (`off`, `shadow`, `on`) as the platform admin.
    pub async fn router(&self, mode: &str, rollout_pct: u8) {
        let admin = self.admin_token().await;
        let a = self
            .post(
                "/api/admin/smart-router-flip",
                Some(&admin),
                json!({"mode": mode, "rolloutPct": rollout_pct, "reason": "set by the test"}),
            )
            .await;
        a.assert_ok(200);
    }

    /// Tops up the wallet of the tenant behind `token` with plenty for tests.
    pub async fn fund(&self, token: &str) {
        let tenant = self.tenant_of(token).await;
        self.topup(&tenant, 1_000_000_000_000).await;
    }

    /// Creates an API key on `project`; returns (secret, key id).
    pub async fn create_key(&self, token: &str, project: &str, body: Value) -> (String, String) {
        let a = self
            .post(&format!("/api/tokenone/projects/{project}/keys"), Some(token), body)
            .await;
        let d = a.assert_ok(201);
        (
            d["secret"].as_str().expect("secret").to_string(),
            d["key"]["id"].as_str().expect("key id").to_string(),
        )
    }
}
