//! Wire compatibility with the vendors' official Python SDKs (`openai`, `anthropic`,
//! `google-genai`): runs the pytest suite in `sdk-tests/` against the real server, with the keys
//! it needs created through the REST API. One backend is enough: this is about the wire format.

use serde_json::json;
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use tokenone_testkit::{Backend, TestApp};

const SDK_TESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sdk-tests");
const INSTALL: &str = "python3 -m pip install -r sdk-tests/requirements.txt";
/// Generous: the suite takes a few seconds, every SDK call has a 10 s timeout and no retries.
const PYTEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Checks that every `name==version` pin of requirements.txt is installed for python3.
const CHECK_PINS: &str = r##"
import sys
from importlib.metadata import version, PackageNotFoundError
problems = []
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, _, pinned = line.partition("==")
    try:
        found = version(name)
    except PackageNotFoundError:
        problems.append(f"{name} is not installed")
        continue
    if pinned and found != pinned:
        problems.append(f"{name} {found} is installed, sdk-tests pins {pinned}")
if problems:
    sys.exit("; ".join(problems))
"##;

fn output_text(out: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command to completion off the async runtime, so the in-process server keeps serving;
/// kills it (by its id) if it outlives `limit`.
async fn run(mut cmd: Command, limit: Duration) -> std::io::Result<Output> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let waiting = tokio::task::spawn_blocking(move || child.wait_with_output());
    match tokio::time::timeout(limit, waiting).await {
        Ok(joined) => joined.expect("wait for the child"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            panic!("`{cmd:?}` did not finish within {limit:?}");
        }
    }
}

/// python3 with the developer's vendor settings (keys, base URLs, proxies) kept out.
fn python3() -> Command {
    let mut c = Command::new("python3");
    for (k, _) in std::env::vars() {
        let vendor = ["OPENAI_", "ANTHROPIC_", "GOOGLE_", "GEMINI_"]
            .iter()
            .any(|p| k.starts_with(p));
        if vendor || k.starts_with("TOKENONE_") {
            c.env_remove(k);
        }
    }
    c.env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdks() {
    let requirements = format!("{SDK_TESTS}/requirements.txt");
    let mut check = python3();
    check.args(["-c", CHECK_PINS, &requirements]);
    match run(check, Duration::from_secs(60)).await {
        Err(e) => panic!("python3 is needed for the SDK tests ({e}); install it, then run `{INSTALL}`"),
        Ok(out) if !out.status.success() => panic!(
            "the SDK tests need their Python packages: run `{INSTALL}` (from the repository root)\n{}",
            output_text(&out)
        ),
        Ok(_) => {}
    }

    let app = TestApp::spawn(Backend::Sqlite).await;
    let token = app.admin_token().await;
    // The SDK tests check wire format against the requested model: deliver natively.
    app.router("off", 100).await;
    let project = app.create_project(&token, "SDK compatibility").await;
    let key = |body: serde_json::Value| {
        let (app, token, project) = (&app, &token, &project);
        async move { app.create_key(token, project, body).await }
    };
    let (dev, _) = key(json!({"name": "sdk", "mode": "dev"})).await;
    let (openai_only, _) = key(json!({"name": "openai only", "mode": "dev", "scopes": ["openai"]})).await;
    let (anthropic_only, _) = key(json!({"name": "anthropic only", "mode": "dev", "scopes": ["anthropic"]})).await;
    let (limited, _) = key(json!({
        "name": "one a minute",
        "mode": "dev",
        "rateLimitPerMinute": {"openai": 1, "anthropic": 1, "gemini": 1},
    }))
    .await;
    let (revoked, revoked_id) = key(json!({"name": "revoked", "mode": "dev"})).await;
    app.delete(
        &format!("/api/tokenone/projects/{project}/keys/{revoked_id}"),
        Some(&token),
    )
    .await
    .assert_ok(200);

    let mut pytest = python3();
    pytest
        .args(["-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", "."])
        .current_dir(SDK_TESTS)
        .env("TOKENONE_URL", &app.base)
        .env("TOKENONE_DEV_KEY", &dev)
        .env("TOKENONE_DEV_KEY_OPENAI_ONLY", &openai_only)
        .env("TOKENONE_DEV_KEY_ANTHROPIC_ONLY", &anthropic_only)
        .env("TOKENONE_REVOKED_KEY", &revoked)
        .env("TOKENONE_RATE_LIMITED_KEY", &limited);
    let out = run(pytest, PYTEST_TIMEOUT).await.expect("run python3 -m pytest");
    assert!(
        out.status.success(),
        "the official SDKs disagree with the gateway (pytest exited with {}):\n{}",
        out.status,
        output_text(&out)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout));
    app.stop().await;
}
