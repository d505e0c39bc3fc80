//! The `tokenone` binary itself: `serve` on the embedded defaults (admin bootstrap printed once,
//! graceful SIGTERM), `migrate`, `admin create`, `config print-default`.

use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tokenone"));
    // Keep the developer's environment out of the child.
    for (k, _) in std::env::vars() {
        if k.starts_with("TOKENONE_") || k == "DATABASE_URL" || k == "REDIS_URL" {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn print_default_is_loadable_toml() {
    let out = bin().args(["config", "print-default"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("[server]") && text.contains("bind = \"127.0.0.1:8080\""),
        "{text}"
    );
    assert!(text.contains("access_ttl_seconds = 900"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenone.toml");
    std::fs::write(&path, &text).unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let out = bin()
        .arg("--config")
        .arg(&path)
        .arg("migrate")
        .env("DATABASE_URL", &db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn unknown_config_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenone.toml");
    std::fs::write(&path, "[server]\nbnd = \"x\"\n").unwrap();
    let out = bin().arg("--config").arg(&path).arg("migrate").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.bnd"));
}

#[test]
fn admin_create_reads_password_from_stdin_and_refuses_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let create = |email: &str| {
        let mut child = bin()
            .args([
                "admin",
                "create",
                "--email",
                email,
                "--name",
                "Ops",
                "--platform-admin",
                "--password-stdin",
            ])
            .env("DATABASE_URL", &db)
            .env("TOKENONE_MASTER_KEY_FILE", dir.path().join("missing-is-an-error"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"stdin-password-1\n").unwrap();
        child.wait_with_output().unwrap()
    };
    // A *_FILE pointing at a missing file is an error, not a silent default.
    let out = create("ops@example.com");
    assert!(!out.status.success());
    let create = |email: &str| {
        let mut child = bin()
            .args([
                "admin",
                "create",
                "--email",
                email,
                "--name",
                "Ops",
                "--platform-admin",
                "--password-stdin",
            ])
            .env("DATABASE_URL", &db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"stdin-password-1\n").unwrap();
        child.wait_with_output().unwrap()
    };
    let out = create("ops@example.com");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("stdin-password-1"),
        "password echoed"
    );
    let again = create("OPS@example.com");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    // The key file was generated beside the database, owner-only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("tokenone.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// `tokenone serve` on an empty SQLite database: prints the admin password once, serves, and
/// exits cleanly on SIGTERM.
#[tokio::test]
async fn serve_bootstraps_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = bin()
        .arg("serve")
        .current_dir(dir.path())
        .env("TOKENONE_BIND", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    // Killed if the test fails before the graceful stop below.
    let mut child = KillOnDrop(Some(child));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut password = None;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(p) = line.trim().strip_prefix("password: ") {
                password = Some(p.to_string());
            }
            if line.contains("TokenOne listening") {
                let addr = line
                    .split("addr=")
                    .nth(1)
                    .and_then(|s| s.split_whitespace().next())
                    .map(str::to_string);
                let _ = tx.send((addr, password.clone()));
            }
        }
    });
    let (addr, password) = rx.recv_timeout(Duration::from_secs(60)).expect("server started");
    let addr = addr.expect("address logged");
    let password = password.expect("generated password printed");
    assert!(
        dir.path().join("tokenone.db").exists(),
        "embedded default is ./tokenone.db"
    );
    let client = reqwest::Client::new();
    let login = client
        .post(format!("http://{addr}/api/auth/login"))
        .json(&json!({"email": "admin@localhost", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let mut child = child.0.take().unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "graceful exit, got {exit:?}");
}

struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
