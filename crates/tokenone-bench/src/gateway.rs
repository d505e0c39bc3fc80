//! The gateway under test: the release `tokenone` binary as a subprocess pinned with `taskset`,
//! its database (a fresh SQLite file, or a fresh database on a PostgreSQL server), readiness,
//! setup through the REST API, `/proc` readings, and SIGTERM.

use anyhow::{bail, Context};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_EMAIL: &str = "bench@tokenone.local";
pub const ADMIN_PASSWORD: &str = "bench-password-123";
pub const UPSTREAM_KEY: &str = "sk-bench-upstream-credential";

/// How to launch the gateway; kept so it can be restarted on the same database.
pub struct Launch {
    pub binary: PathBuf,
    pub core: Option<usize>,
    pub env: Vec<(String, String)>,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub addr: SocketAddr,
}

pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

/// A free local port (bound and released: a small race, fine for a benchmark).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

pub fn taskset_available() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A fresh 32-byte vault master key, base64.
pub fn master_key() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Creates a fresh database on the PostgreSQL server `server` (connecting to its `test`
/// database to run `CREATE DATABASE`); returns its URL and name.
pub async fn create_pg_database(server: &str) -> anyhow::Result<(String, String)> {
    let server = server.trim_end_matches('/');
    let name = format!("tokenone_bench_{:016x}", rand::random::<u64>());
    let mut conn = sqlx::PgConnection::connect(&format!("{server}/test"))
        .await
        .with_context(|| format!("connecting to {server}/test"))?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .context("CREATE DATABASE")?;
    let _ = conn.close().await;
    Ok((format!("{server}/{name}"), name))
}

pub async fn drop_pg_database(server: &str, name: &str) -> anyhow::Result<()> {
    let server = server.trim_end_matches('/');
    let mut conn = sqlx::PgConnection::connect(&format!("{server}/test")).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok(())
}

/// Environment names that would leak the caller's own configuration into the gateway.
fn foreign_config(name: &str) -> bool {
    name.starts_with("TOKENONE_") || name == "DATABASE_URL" || name == "REDIS_URL"
}

impl Launch {
    /// Starts the gateway (pinned when `core` is set); does not wait for it.
    pub fn spawn(&self) -> anyhow::Result<Gateway> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let mut cmd = match self.core {
            Some(core) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(core.to_string()).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        cmd.arg("serve");
        for (k, _) in std::env::vars_os() {
            if k.to_str().is_some_and(foreign_config) {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        Ok(Gateway {
            child,
            addr: self.addr,
            log: self.log.clone(),
        })
    }
}

/// A small HTTP exchange on a fresh connection: (status, body as JSON or Null).
pub async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut conn = crate::load::connect(addr).await?;
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, addr.to_string());
    if let Some(t) = token {
        req = req.header(AUTHORIZATION, format!("Bearer {t}"));
    }
    let bytes = match body {
        Some(b) => {
            req = req.header(CONTENT_TYPE, "application/json");
            Bytes::from(serde_json::to_vec(&b)?)
        }
        None => Bytes::new(),
    };
    let resp = conn.send_request(req.body(Full::new(bytes))?).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

impl Gateway {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `/readyz` every 2 ms until it answers 200; returns when it did.
    pub async fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the gateway exited ({status}) before it was ready:\n{}",
                    self.log_tail()
                );
            }
            let probe = tokio::time::timeout(
                Duration::from_millis(500),
                request(self.addr, Method::GET, "/readyz", None, None),
            )
            .await;
            if let Ok(Ok((StatusCode::OK, _))) = probe {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                bail!("the gateway was not ready within {limit:?}:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Logs in as the admin, creates a project and a live key; returns the key's secret.
    pub async fn live_key(&self) -> anyhow::Result<String> {
        let (s, login) = request(
            self.addr,
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
        )
        .await?;
        let token = login["data"]["tokens"]["accessToken"]
            .as_str()
            .with_context(|| format!("login answered {s}: {login}"))?
            .to_string();
        // Live calls spend the tenant's wallet: fund it generously (best effort; a build
        // without the wallet API answers 404 and needs no funds).
        if let Some(tenant) = login["data"]["user"]["tenantId"].as_str() {
            let (s, answer) = request(
                self.addr,
                Method::POST,
                &format!("/api/admin/wallets/{tenant}/topup"),
                Some(&token),
                Some(json!({"tokens": "1000000000000000", "reason": "benchmark",
                            "idempotencyKey": format!("bench-{:016x}", rand::random::<u64>())})),
            )
            .await?;
            match s {
                StatusCode::OK | StatusCode::CREATED => {}
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {}
                _ => eprintln!("warning: topping up the wallet answered {s}: {answer}"),
            }
        }
        let (s, project) = request(
            self.addr,
            Method::POST,
            "/api/tokenone/projects",
            Some(&token),
            Some(json!({"name": "bench"})),
        )
        .await?;
        let id = project["data"]["id"]
            .as_str()
            .with_context(|| format!("creating the project answered {s}: {project}"))?
            .to_string();
        let (s, key) = request(
            self.addr,
            Method::POST,
            &format!("/api/tokenone/projects/{id}/keys"),
            Some(&token),
            Some(json!({"name": "bench", "mode": "live"})),
        )
        .await?;
        Ok(key["data"]["secret"]
            .as_str()
            .with_context(|| format!("creating the key answered {s}: {key}"))?
            .to_string())
    }

    /// A gauge or counter from `/metrics` (the first sample whose name ends with `name`).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let mut conn = crate::load::connect(self.addr).await.ok()?;
        let req = Request::builder()
            .uri("/metrics")
            .header(HOST, self.addr.to_string())
            .body(Full::new(Bytes::new()))
            .ok()?;
        let resp = conn.send_request(req).await.ok()?;
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        let text = String::from_utf8_lossy(&body);
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let metric = key.split('{').next()?;
            metric.ends_with(name).then(|| value.parse().ok())?
        })
    }

    /// SIGTERM, then waits up to `limit` for the exit (SIGKILL after that).
    pub async fn stop(mut self, limit: Duration) -> anyhow::Result<(Duration, String)> {
        let started = Instant::now();
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok((started.elapsed(), status.to_string()));
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("the gateway did not exit within {limit:?} of SIGTERM; killed");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// `/proc/<pid>/status` fields in kB, e.g. `VmHWM`.
pub fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Context switches (voluntary and not) of all the process's threads so far.
pub fn context_switches(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let text = std::fs::read_to_string(task.ok()?.path().join("status")).unwrap_or_default();
        total += text
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split(':').nth(1)?.trim().parse::<u64>().ok())
            .sum::<u64>();
    }
    Some(total)
}

/// User + system CPU time of the process (all threads) so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis((utime + stime) * 10))
}

pub fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::fs::canonicalize(p)
        .with_context(|| format!("{} (build it with `cargo build --release -p tokenone`)", p.display()))
}

/// Local service processes (PostgreSQL, Redis) moved to one core for the run, so they do not
/// share the gateway's core; their former affinity comes back when this is dropped.
pub struct PinnedServices {
    restore: Vec<(u32, String)>,
}

impl PinnedServices {
    /// Pins every process named exactly like one of `names` (all its threads) to `core`.
    /// Processes they start later (PostgreSQL's backends) inherit the affinity.
    pub fn pin(names: &[String], core: usize) -> PinnedServices {
        let mut restore = Vec::new();
        for name in names.iter().filter(|n| !n.is_empty()) {
            let out = Command::new("pgrep").arg("-x").arg(name).output();
            let pids: Vec<u32> = out
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .filter_map(|l| l.trim().parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            if pids.is_empty() {
                eprintln!("warning: --pin-services: no process named {name}");
            }
            for pid in pids {
                // "pid 2216's current affinity mask: 3"
                let Some(mask) = Command::new("taskset")
                    .args(["-p", &pid.to_string()])
                    .output()
                    .ok()
                    .and_then(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .rsplit(' ')
                            .next()
                            .map(|m| m.trim().to_string())
                    })
                else {
                    continue;
                };
                let pinned = Command::new("taskset")
                    .args(["-a", "-p", "-c", &core.to_string(), &pid.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if pinned {
                    restore.push((pid, mask));
                } else {
                    eprintln!("warning: --pin-services: could not pin {name} (pid {pid})");
                }
            }
        }
        PinnedServices { restore }
    }

    pub fn count(&self) -> usize {
        self.restore.len()
    }
}

impl Drop for PinnedServices {
    fn drop(&mut self) {
        for (pid, mask) in &self.restore {
            let _ = Command::new("taskset")
                .args(["-a", "-p", mask, &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
