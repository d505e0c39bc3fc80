//! Identity (register, login, throttling, JWTs, refresh rotation, logout, cookies and CSRF,
//! platform admins) and the REST conventions (envelope, 404/405, request ids, ids, timestamps),
//! as auth.md and conventions.md state them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures::future::join_all;
use hmac::{Hmac, Mac};
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Sha256, Sha512};
use tokenone_core::secret::Secret;
use tokenone_testkit::{both_backends, Answer, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD};

const PASSWORD: &str = "password-123";
/// The signing key of the apps spawned by tests that forge tokens themselves.
const KNOWN_JWT_SECRET: &str = "auth-tests-known-jwt-secret-0123456789abcdef";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Sends a request with extra headers and an optional raw body `(content type, bytes)`; an empty
/// content type sends none.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> Answer {
    let mut req = app.client.request(method, app.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some((ct, bytes)) = body {
        if !ct.is_empty() {
            req = req.header(CONTENT_TYPE, ct);
        }
        req = req.body(bytes);
    }
    TestApp::answer(req.send().await.expect("request")).await
}

async fn post_raw(app: &TestApp, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Answer {
    send(app, Method::POST, path, &[], Some((content_type, body.into()))).await
}

async fn register_answer(app: &TestApp, body: Value) -> Answer {
    app.post("/api/auth/register", None, body).await
}

async fn register_ok(app: &TestApp, email: &str) -> Answer {
    let a = register_answer(app, json!({"email": email, "password": PASSWORD, "name": "Test User"})).await;
    a.assert_ok(201);
    a
}

async fn login_answer(app: &TestApp, email: &str, password: &str) -> Answer {
    app.post("/api/auth/login", None, json!({"email": email, "password": password}))
        .await
}

async fn refresh_answer(app: &TestApp, refresh_token: &str) -> Answer {
    app.post("/api/auth/refresh", None, json!({"refreshToken": refresh_token}))
        .await
}

/// `(accessToken, refreshToken)` of a login-shaped answer.
#[track_caller]
fn pair(a: &Answer) -> (String, String) {
    let t = &a.data()["tokens"];
    (
        t["accessToken"].as_str().expect("accessToken").to_string(),
        t["refreshToken"].as_str().expect("refreshToken").to_string(),
    )
}

/// Sorted keys of a JSON object.
#[track_caller]
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

fn sorted(k: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = k.iter().map(|s| s.to_string()).collect();
    k.sort();
    k
}

/// The three dot-separated parts of a JWT.
#[track_caller]
fn jwt_parts(token: &str) -> (String, String, String) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWT: {token}");
    (parts[0].to_string(), parts[1].to_string(), parts[2].to_string())
}

#[track_caller]
fn decode_part(part: &str) -> Value {
    let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON part")
}

fn encode_json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
}

fn hs256(key: &[u8], signing_input: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac key");
    mac.update(signing_input.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

fn hs512(key: &[u8], signing_input: &str) -> String {
    let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("hmac key");
    mac.update(signing_input.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// A JWT with this header and payload, signed HS256 under `key`.
fn sign_hs256(key: &[u8], header: &Value, payload: &Value) -> String {
    let input = format!("{}.{}", encode_json(header), encode_json(payload));
    let sig = hs256(key, &input);
    format!("{input}.{sig}")
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// A lowercase hyphenated UUID of version 7 (RFC 9562 variant).
fn is_uuid_v7(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
        && b[14] == b'7'
        && b"89ab".contains(&b[19])
}

/// `2026-04-19T22:34:12.000Z`: UTC with exactly three fractional digits.
fn is_api_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 24
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && b[23] == b'Z'
}

/// The attributes of the `Set-Cookie` for `name`, lowercased (`httponly`, `samesite=lax`, ...).
#[track_caller]
fn cookie_attrs(a: &Answer, name: &str) -> Vec<String> {
    let c = a
        .set_cookies()
        .into_iter()
        .find(|c| {
            c.split(';')
                .next()
                .and_then(|kv| kv.split_once('='))
                .map(|(k, _)| k.trim())
                == Some(name)
        })
        .unwrap_or_else(|| panic!("no Set-Cookie for {name}: {:?}", a.set_cookies()));
    c.split(';').skip(1).map(|s| s.trim().to_ascii_lowercase()).collect()
}

/// Checks the three session cookies of a login-shaped answer.
#[track_caller]
fn assert_session_cookies(a: &Answer) {
    let (access, refresh) = pair(a);
    assert_eq!(a.cookie("accessToken").as_deref(), Some(access.as_str()));
    assert_eq!(a.cookie("refreshToken").as_deref(), Some(refresh.as_str()));
    for name in ["accessToken", "refreshToken"] {
        let attrs = cookie_attrs(a, name);
        assert!(attrs.contains(&"httponly".into()), "{name}: {attrs:?}");
        assert!(attrs.contains(&"samesite=lax".into()), "{name}: {attrs:?}");
        assert!(attrs.contains(&"path=/".into()), "{name}: {attrs:?}");
        assert!(
            !attrs.contains(&"secure".into()),
            "secure_cookies is off by default: {attrs:?}"
        );
    }
    let csrf = a.cookie("csrfToken").expect("csrfToken cookie");
    assert!(csrf.len() >= 16, "csrf token too short: {csrf}");
    let attrs = cookie_attrs(a, "csrfToken");
    assert!(
        !attrs.contains(&"httponly".into()),
        "csrfToken must be readable: {attrs:?}"
    );
    assert!(attrs.contains(&"path=/".into()), "{attrs:?}");
}

/// Stops the default app and starts one whose JWT key the test knows.
async fn app_with_known_key(app: TestApp) -> TestApp {
    let backend = app.backend;
    app.stop().await;
    TestApp::spawn_with(backend, |cfg| cfg.auth.jwt_secret = Secret::new(KNOWN_JWT_SECRET)).await
}

async fn project_count(app: &TestApp, token: &str) -> usize {
    let a = app.get("/api/tokenone/projects", Some(token)).await;
    a.assert_ok(200).as_array().expect("project list").len()
}

// ---------------------------------------------------------------------------------------------
// Register
// ---------------------------------------------------------------------------------------------

async fn register_returns_login_shape_and_cookies(app: TestApp) {
    let a = register_answer(
        &app,
        json!({"email": "Ann.Smith@Example.com", "password": PASSWORD, "name": "Ann", "tenantName": "Ann's shop"}),
    )
    .await;
    let d = a.assert_ok(201);
    assert_eq!(keys(d), sorted(&["user", "tokens"]), "{}", a.text);
    assert_eq!(keys(&d["tokens"]), sorted(&["accessToken", "refreshToken"]));
    let u = &d["user"];
    assert!(is_uuid_v7(u["id"].as_str().unwrap()), "{u}");
    assert_eq!(u["email"], "Ann.Smith@Example.com", "email is stored as given");
    assert_eq!(u["name"], "Ann");
    assert_eq!(u["tenantRole"], "owner");
    assert_eq!(u["platformAdmin"], json!(false));
    assert!(u.get("password").is_none() && u.get("passwordHash").is_none(), "{u}");
    assert!(!a.text.contains(PASSWORD), "the password must never be returned");
    assert_session_cookies(&a);
    assert_eq!(
        a.header("content-type").map(|c| c.starts_with("application/json")),
        Some(true)
    );

    // The tokens work and the tenant is the one just created.
    let (access, _) = pair(&a);
    let me = app.get("/api/auth/me", Some(&access)).await;
    let m = me.assert_ok(200);
    assert_eq!(m["user"]["id"], u["id"]);
    assert_eq!(m["tenant"]["id"], u["tenantId"]);
    assert_eq!(m["tenant"]["name"], "Ann's shop");

    // Without tenantName the tenant still gets a name.
    let b = register_ok(&app, "bob@example.com").await;
    let me = app.get("/api/auth/me", Some(&pair(&b).0)).await;
    let name = me.assert_ok(200)["tenant"]["name"].as_str().unwrap().to_string();
    assert!(!name.is_empty());
    assert_ne!(
        b.data()["user"]["tenantId"],
        u["tenantId"],
        "each sign-up gets its own tenant"
    );
}

async fn register_duplicate_email_is_conflict(app: TestApp) {
    register_ok(&app, "Dup@Example.com").await;
    for email in ["Dup@Example.com", "dup@example.com", "DUP@EXAMPLE.COM"] {
        let a = register_answer(
            &app,
            json!({"email": email, "password": "other-password-1", "name": "X"}),
        )
        .await;
        a.assert_error(409, "conflict");
    }
    // Nothing changed: the first account keeps its password, the second never existed.
    login_answer(&app, "dup@example.com", PASSWORD).await.assert_ok(200);
    login_answer(&app, "Dup@Example.com", "other-password-1")
        .await
        .assert_error(401, "unauthenticated");
}

async fn register_disabled_is_forbidden(app: TestApp) {
    let backend = app.backend;
    app.stop().await;
    let app = TestApp::spawn_with(backend, |cfg| cfg.auth.signup_enabled = false).await;
    let a = register_answer(
        &app,
        json!({"email": "nope@example.com", "password": PASSWORD, "name": "No"}),
    )
    .await;
    a.assert_error(403, "forbidden");
    assert!(a.cookie("accessToken").is_none());
    login_answer(&app, "nope@example.com", PASSWORD)
        .await
        .assert_error(401, "unauthenticated");
    // Existing accounts still sign in.
    app.admin_token().await;
}

async fn register_validates_values(app: TestApp) {
    let bad_emails = [
        String::new(),
        "plainaddress".into(),
        "a@b".into(),
        "@example.com".into(),
        "a@@example.com".into(),
        "a@b@example.com".into(),
        "a b@example.com".into(),
        "a@.example.com".into(),
        "a@example..com".into(),
        format!("{}@example.com", "a".repeat(250)),
    ];
    for email in &bad_emails {
        let a = register_answer(&app, json!({"email": email, "password": PASSWORD, "name": "N"})).await;
        a.assert_error(400, "invalid_request");
    }

    let email = "values@example.com";
    let long_name = "é".repeat(101);
    let bad = [
        json!({"email": email, "password": "1234567", "name": "N"}),
        json!({"email": email, "password": "ééééééé", "name": "N"}),
        json!({"email": email, "password": "x".repeat(129), "name": "N"}),
        json!({"email": email, "password": "", "name": "N"}),
        json!({"email": email, "password": PASSWORD, "name": ""}),
        json!({"email": email, "password": PASSWORD, "name": long_name}),
        json!({"email": email, "password": PASSWORD, "name": "N", "tenantName": ""}),
        json!({"email": email, "password": PASSWORD, "name": "N", "tenantName": "t".repeat(101)}),
    ];
    for body in bad {
        let a = register_answer(&app, body.clone()).await;
        a.assert_error(400, "invalid_request");
        assert!(
            !a.text.contains(PASSWORD),
            "the password must not be echoed: {}",
            a.text
        );
    }
    // None of the refused attempts created the account.
    login_answer(&app, email, PASSWORD)
        .await
        .assert_error(401, "unauthenticated");

    // Boundaries are inclusive and counted in Unicode scalar values.
    let a = register_answer(
        &app,
        json!({"email": email, "password": "é".repeat(8), "name": "é".repeat(100), "tenantName": "ü".repeat(100)}),
    )
    .await;
    assert_eq!(a.assert_ok(201)["user"]["name"], json!("é".repeat(100)));
    login_answer(&app, email, &"é".repeat(8)).await.assert_ok(200);
    let a = register_answer(
        &app,
        json!({"email": "max@example.com", "password": "p".repeat(128), "name": "M"}),
    )
    .await;
    a.assert_ok(201);
    login_answer(&app, "max@example.com", &"p".repeat(128))
        .await
        .assert_ok(200);
}

async fn register_rejects_unknown_fields_and_wrong_types(app: TestApp) {
    let email = "strict@example.com";
    let bad = [
        json!({"email": email, "password": PASSWORD, "name": "N", "platformAdmin": true}),
        json!({"email": email, "password": PASSWORD, "name": "N", "tenantRole": "owner"}),
        json!({"email": email, "password": PASSWORD, "name": "N", "tenantId": "0192f0c8-0000-7000-8000-000000000000"}),
        json!({"email": email, "password": PASSWORD, "name": "N", "id": "x"}),
        json!({"email": 42, "password": PASSWORD, "name": "N"}),
        json!({"email": email, "password": 12345678, "name": "N"}),
        json!({"email": email, "password": PASSWORD, "name": ["N"]}),
        json!({"email": email, "password": PASSWORD, "name": null}),
        json!({"email": email, "password": PASSWORD, "name": "N", "tenantName": 7}),
        json!({"email": email, "password": PASSWORD}),
        json!({}),
        json!([email, PASSWORD, "N"]),
        json!("register me"),
        json!(null),
    ];
    for body in bad {
        let a = register_answer(&app, body.clone()).await;
        assert_eq!(a.status, 400, "{body}: {}", a.text);
        a.assert_error(400, "invalid_request");
    }
    // Nothing was created: the email is still free, and the account made now is not an admin.
    let a = register_ok(&app, email).await;
    assert_eq!(a.data()["user"]["platformAdmin"], json!(false));
    assert_eq!(a.data()["user"]["name"], "Test User");
}

async fn register_rejects_malformed_json_and_wrong_content_type(app: TestApp) {
    let email = "ctype@example.com";
    let valid = serde_json::to_vec(&json!({"email": email, "password": PASSWORD, "name": "C"})).unwrap();
    let malformed: [&[u8]; 5] = [
        br#"{"email": "ctype@example.com", "password": "#,
        b"not json at all",
        br#"{"email": "ctype@example.com", "password": "password-123", "name": "C",}"#,
        b"",
        b"\xff\xfe{}",
    ];
    for body in malformed {
        post_raw(&app, "/api/auth/register", "application/json", body.to_vec())
            .await
            .assert_error(400, "invalid_request");
    }
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
    ] {
        let a = post_raw(&app, "/api/auth/register", ct, valid.clone()).await;
        assert_eq!(a.status, 400, "content type {ct:?}: {}", a.text);
        a.assert_error(400, "invalid_request");
    }
    login_answer(&app, email, PASSWORD)
        .await
        .assert_error(401, "unauthenticated");
    // A charset parameter is still JSON.
    post_raw(&app, "/api/auth/register", "application/json; charset=utf-8", valid)
        .await
        .assert_ok(201);
}

async fn register_body_over_limit_is_413(app: TestApp) {
    let email = "big@example.com";
    let huge = json!({"email": email, "password": PASSWORD, "name": "n".repeat(1024 * 1024 + 16)});
    let a = post_raw(
        &app,
        "/api/auth/register",
        "application/json",
        serde_json::to_vec(&huge).unwrap(),
    )
    .await;
    a.assert_error(413, "payload_too_large");
    // Just under the limit the body is read and judged on its content (name too long: 400).
    let under = json!({"email": email, "password": PASSWORD, "name": "n".repeat(1000 * 1000)});
    post_raw(
        &app,
        "/api/auth/register",
        "application/json",
        serde_json::to_vec(&under).unwrap(),
    )
    .await
    .assert_error(400, "invalid_request");
    // Neither created the account.
    register_ok(&app, email).await;
}

// ---------------------------------------------------------------------------------------------
// Login
// ---------------------------------------------------------------------------------------------

async fn login_returns_exact_shape(app: TestApp) {
    let reg = register_ok(&app, "Login.Shape@Example.com").await;
    // Emails compare case-insensitively.
    let a = login_answer(&app, "login.shape@EXAMPLE.com", PASSWORD).await;
    let d = a.assert_ok(200);
    assert_eq!(keys(d), sorted(&["user", "tokens"]), "{}", a.text);
    assert_eq!(keys(&d["tokens"]), sorted(&["accessToken", "refreshToken"]));
    let u = &d["user"];
    for k in ["id", "email", "name"] {
        assert!(u[k].is_string(), "user.{k}: {u}");
    }
    assert_eq!(u["id"], reg.data()["user"]["id"]);
    assert_eq!(u["email"], "Login.Shape@Example.com");
    assert!(!a.text.contains(PASSWORD));
    assert_session_cookies(&a);
    // A new login is a new session: new tokens.
    assert_ne!(pair(&a), pair(&reg));
    // Login bodies are strict too.
    app.post(
        "/api/auth/login",
        None,
        json!({"email": "login.shape@example.com", "password": PASSWORD, "remember": true}),
    )
    .await
    .assert_error(400, "invalid_request");
    app.post("/api/auth/login", None, json!({"email": "login.shape@example.com"}))
        .await
        .assert_error(400, "invalid_request");
    app.post("/api/auth/login", None, json!({"email": 1, "password": PASSWORD}))
        .await
        .assert_error(400, "invalid_request");
}

async fn login_failures_are_indistinguishable(app: TestApp) {
    register_ok(&app, "known@example.com").await;
    let wrong_password = login_answer(&app, "known@example.com", "wrong-password").await;
    let unknown_email = login_answer(&app, "unknown@example.com", "wrong-password").await;
    wrong_password.assert_error(401, "unauthenticated");
    unknown_email.assert_error(401, "unauthenticated");
    assert_eq!(wrong_password.text, unknown_email.text);
    assert!(wrong_password.cookie("accessToken").is_none());
    assert!(wrong_password.header("retry-after").is_none());
}

async fn login_is_throttled_per_email(app: TestApp) {
    let victim = register_ok(&app, "victim@example.com").await;
    register_ok(&app, "bystander@example.com").await;
    // Ten failures, in varying case: one email, one counter.
    for i in 0..10 {
        let email = if i % 2 == 0 {
            "victim@example.com"
        } else {
            "VICTIM@Example.com"
        };
        let a = login_answer(&app, email, &format!("wrong-password-{i}")).await;
        assert_eq!(a.status, 401, "attempt {}: {}", i + 1, a.text);
        a.assert_error(401, "unauthenticated");
    }
    // The 11th attempt is refused even with the right password.
    let a = login_answer(&app, "victim@example.com", PASSWORD).await;
    a.assert_error(429, "rate_limited");
    assert!(a.cookie("accessToken").is_none());
    let retry: u64 = a
        .header("retry-after")
        .expect("Retry-After header")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!((1..=15 * 60).contains(&retry), "Retry-After {retry}");
    login_answer(&app, "Victim@Example.COM", PASSWORD)
        .await
        .assert_error(429, "rate_limited");
    // Other accounts are unaffected, and the victim's existing session keeps working.
    login_answer(&app, "bystander@example.com", PASSWORD)
        .await
        .assert_ok(200);
    app.get("/api/auth/me", Some(&pair(&victim).0)).await.assert_ok(200);
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

async fn jwt_claims_and_lifetimes(app: TestApp) {
    let a = register_ok(&app, "claims@example.com").await;
    let user_id = a.data()["user"]["id"].clone();
    let (access, refresh) = pair(&a);
    let now = now_secs();

    let (h, p, _) = jwt_parts(&access);
    let header = decode_part(&h);
    assert_eq!(header["alg"], "HS256", "{header}");
    let claims = decode_part(&p);
    assert_eq!(claims["typ"], "access", "{claims}");
    let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 900, "{claims}");
    assert!((iat - now).abs() <= 60, "iat {iat} vs now {now}");
    assert_eq!(claims["sub"], user_id);

    let (h, p, _) = jwt_parts(&refresh);
    assert_eq!(decode_part(&h)["alg"], "HS256");
    let rclaims = decode_part(&p);
    assert_eq!(rclaims["typ"], "refresh", "{rclaims}");
    let (iat, exp) = (rclaims["iat"].as_i64().unwrap(), rclaims["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 604_800, "{rclaims}");
    assert_eq!(rclaims["sub"], user_id);
    // A token id and a family id.
    assert!(rclaims["jti"].as_str().is_some_and(|s| !s.is_empty()), "{rclaims}");
    assert!(rclaims["fam"].as_str().is_some_and(|s| !s.is_empty()), "{rclaims}");

    // Lifetimes survive a refresh.
    let r = refresh_answer(&app, &refresh).await;
    let (access2, refresh2) = pair(&r);
    let c = decode_part(&jwt_parts(&access2).1);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 900);
    assert_eq!(c["typ"], "access");
    let c = decode_part(&jwt_parts(&refresh2).1);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 604_800);
    assert_eq!(c["typ"], "refresh");
    assert_ne!(c["jti"], rclaims["jti"], "a rotated refresh token has a new id");
    assert_eq!(c["fam"], rclaims["fam"], "rotation stays in the family");
}

async fn me_has_the_documented_shape(app: TestApp) {
    let a = register_answer(
        &app,
        json!({"email": "me@example.com", "password": PASSWORD, "name": "Me Myself", "tenantName": "My Org"}),
    )
    .await;
    a.assert_ok(201);
    let me = app.get("/api/auth/me", Some(&pair(&a).0)).await;
    let d = me.assert_ok(200);
    assert_eq!(keys(d), sorted(&["user", "tenant"]), "{}", me.text);
    assert_eq!(
        keys(&d["user"]),
        sorted(&["id", "email", "name", "tenantId", "tenantRole", "platformAdmin"]),
        "{}",
        me.text
    );
    assert_eq!(keys(&d["tenant"]), sorted(&["id", "name"]), "{}", me.text);
    assert_eq!(d["user"]["id"], a.data()["user"]["id"]);
    assert_eq!(d["user"]["email"], "me@example.com");
    assert_eq!(d["user"]["name"], "Me Myself");
    assert_eq!(d["user"]["tenantRole"], "owner");
    assert_eq!(d["user"]["platformAdmin"], json!(false));
    assert_eq!(d["user"]["tenantId"], d["tenant"]["id"]);
    assert_eq!(d["tenant"]["name"], "My Org");
}

async fn me_rejects_missing_and_bad_tokens(app: TestApp) {
    let a = register_ok(&app, "bad-tokens@example.com").await;
    let (access, _) = pair(&a);
    app.get("/api/auth/me", Some(&access)).await.assert_ok(200);

    app.get("/api/auth/me", None).await.assert_error(401, "unauthenticated");
    let (h, p, s) = jwt_parts(&access);

    // Another signature: first character of the signature changed.
    let first = s.chars().next().unwrap();
    let swapped = if first == 'A' { 'B' } else { 'A' };
    let tampered_sig = format!("{h}.{p}.{swapped}{}", &s[1..]);
    // A payload changed under the original signature.
    let mut claims = decode_part(&p);
    claims["exp"] = json!(claims["exp"].as_i64().unwrap() + 86_400);
    let tampered_payload = format!("{h}.{}.{s}", encode_json(&claims));
    // Signed with a key that is not the server's.
    let other_key = sign_hs256(
        b"not-the-server-key-not-the-server-key",
        &decode_part(&h),
        &decode_part(&p),
    );
    // alg none, with and without a trailing signature.
    let none_header = encode_json(&json!({"alg": "none", "typ": "JWT"}));
    let alg_none = format!("{none_header}.{p}.");
    let alg_none_sig = format!("{none_header}.{p}.{s}");
    let alg_none_short = format!("{none_header}.{p}");

    let garbled = [
        "garbage".to_string(),
        "a.b.c".to_string(),
        format!("{access}x"),
        access.chars().rev().collect(),
        tampered_sig,
        tampered_payload,
        other_key,
        alg_none,
        alg_none_sig,
        alg_none_short,
    ];
    for t in &garbled {
        let r = app.get("/api/auth/me", Some(t)).await;
        assert_eq!(r.status, 401, "token {t}: {}", r.text);
        r.assert_error(401, "unauthenticated");
    }
    // Other schemes and malformed headers carry no credentials.
    for header in [
        format!("Basic {access}"),
        format!("Token {access}"),
        "Bearer".to_string(),
        "Bearer ".to_string(),
        access.clone(),
    ] {
        send(&app, Method::GET, "/api/auth/me", &[("authorization", &header)], None)
            .await
            .assert_error(401, "unauthenticated");
    }
    // A csrfToken cookie alone is no credential.
    send(&app, Method::GET, "/api/auth/me", &[("cookie", "csrfToken=abc")], None)
        .await
        .assert_error(401, "unauthenticated");
    // Error messages leak nothing internal.
    let r = app.get("/api/auth/me", Some("garbage")).await;
    for leak in ["jsonwebtoken", "ErrorKind", "src/", "panicked", "sqlx"] {
        assert!(!r.text.contains(leak), "{}", r.text);
    }
}

async fn token_kinds_are_not_interchangeable(app: TestApp) {
    let a = register_ok(&app, "kinds@example.com").await;
    let (access, refresh) = pair(&a);
    app.get("/api/auth/me", Some(&refresh))
        .await
        .assert_error(401, "unauthenticated");
    refresh_answer(&app, &access).await.assert_error(401, "unauthenticated");
    // An access token as a refresh cookie is no better.
    send(
        &app,
        Method::POST,
        "/api/auth/refresh",
        &[
            ("cookie", &format!("refreshToken={access}; csrfToken=c")),
            ("x-csrf-token", "c"),
        ],
        None,
    )
    .await
    .assert_error(401, "unauthenticated");
    // Nothing was spent or revoked by the refused attempts.
    app.get("/api/auth/me", Some(&access)).await.assert_ok(200);
    refresh_answer(&app, &refresh).await.assert_ok(200);
}

async fn forged_and_expired_tokens_are_refused(app: TestApp) {
    let app = app_with_known_key(app).await;
    let key = KNOWN_JWT_SECRET.as_bytes();
    let a = register_ok(&app, "forged@example.com").await;
    let (access, refresh) = pair(&a);
    let (h, p, s) = jwt_parts(&access);
    // Control: the test really holds the server's key (HS256 is deterministic).
    assert_eq!(
        hs256(key, &format!("{h}.{p}")),
        s,
        "the configured jwt_secret must sign the tokens"
    );
    let header = decode_part(&h);
    let claims = decode_part(&p);
    let now = now_secs();

    // Re-signed with the key and a fresh lifetime: accepted (the forging itself works).
    let mut fresh = claims.clone();
    fresh["iat"] = json!(now);
    fresh["exp"] = json!(now + 600);
    app.get("/api/auth/me", Some(&sign_hs256(key, &header, &fresh)))
        .await
        .assert_ok(200);

    // Expired, well beyond and just beyond the 5 s leeway.
    for exp_ago in [3600, 7] {
        let mut old = claims.clone();
        old["iat"] = json!(now - 4000);
        old["exp"] = json!(now - exp_ago);
        let t = sign_hs256(key, &header, &old);
        let r = app.get("/api/auth/me", Some(&t)).await;
        assert_eq!(r.status, 401, "expired {exp_ago}s ago: {}", r.text);
        r.assert_error(401, "unauthenticated");
    }

    // Missing `exp` is refused.
    let mut no_exp = claims.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    app.get("/api/auth/me", Some(&sign_hs256(key, &header, &no_exp)))
        .await
        .assert_error(401, "unauthenticated");

    // The algorithm is pinned: HS512 under the right key, and `none`, are refused.
    let h512 = encode_json(&json!({"alg": "HS512", "typ": "JWT"}));
    let input = format!("{h512}.{p}");
    let hs512_token = format!("{input}.{}", hs512(key, &input));
    app.get("/api/auth/me", Some(&hs512_token))
        .await
        .assert_error(401, "unauthenticated");
    let none = encode_json(&json!({"alg": "none", "typ": "JWT"}));
    app.get("/api/auth/me", Some(&format!("{none}.{p}.")))
        .await
        .assert_error(401, "unauthenticated");
    // HS256 under another key.
    app.get(
        "/api/auth/me",
        Some(&sign_hs256(b"some-other-key-some-other-key", &header, &claims)),
    )
    .await
    .assert_error(401, "unauthenticated");

    // An expired refresh token is refused, and does not harm the live session.
    let (rh, rp, _) = jwt_parts(&refresh);
    let mut rclaims = decode_part(&rp);
    rclaims["iat"] = json!(now - 700_000);
    rclaims["exp"] = json!(now - 3600);
    let expired_refresh = sign_hs256(key, &decode_part(&rh), &rclaims);
    refresh_answer(&app, &expired_refresh)
        .await
        .assert_error(401, "unauthenticated");
    // An access-typed token is refused at /refresh even when validly signed.
    refresh_answer(&app, &access).await.assert_error(401, "unauthenticated");
    app.get("/api/auth/me", Some(&access)).await.assert_ok(200);
    refresh_answer(&app, &refresh).await.assert_ok(200);
}

// ---------------------------------------------------------------------------------------------
// Refresh rotation and logout
// ---------------------------------------------------------------------------------------------

async fn refresh_rotates_the_pair(app: TestApp) {
    let a = register_ok(&app, "rotate@example.com").await;
    let (access1, refresh1) = pair(&a);
    let r = refresh_answer(&app, &refresh1).await;
    let d = r.assert_ok(200);
    assert_eq!(keys(d), sorted(&["user", "tokens"]), "{}", r.text);
    assert_eq!(keys(&d["tokens"]), sorted(&["accessToken", "refreshToken"]));
    assert_eq!(d["user"]["id"], a.data()["user"]["id"]);
    assert_eq!(d["user"]["email"], "rotate@example.com");
    assert_session_cookies(&r);
    let (access2, refresh2) = pair(&r);
    assert_ne!(access2, access1);
    assert_ne!(refresh2, refresh1);
    app.get("/api/auth/me", Some(&access2)).await.assert_ok(200);
    // The new refresh token rotates again.
    let r3 = refresh_answer(&app, &refresh2).await;
    r3.assert_ok(200);
    app.get("/api/auth/me", Some(&pair(&r3).0)).await.assert_ok(200);
    // Bodies: strict, and a token is required.
    refresh_answer(&app, "not-a-token")
        .await
        .assert_error(401, "unauthenticated");
    app.post("/api/auth/refresh", None, json!({}))
        .await
        .assert_error(401, "unauthenticated");
    app.post(
        "/api/auth/refresh",
        None,
        json!({"refreshToken": pair(&r3).1, "extra": 1}),
    )
    .await
    .assert_error(400, "invalid_request");
    app.post("/api/auth/refresh", None, json!({"refreshToken": 5}))
        .await
        .assert_error(400, "invalid_request");
    // The refused bodies did not spend the current token.
    refresh_answer(&app, &pair(&r3).1).await.assert_ok(200);
}

async fn refresh_reuse_revokes_the_family_only(app: TestApp) {
    let a = register_ok(&app, "reuse@example.com").await;
    let (access1, refresh1) = pair(&a);
    // Another device: an independent login session.
    let other = login_answer(&app, "reuse@example.com", PASSWORD).await;
    let (other_access, other_refresh) = pair(&other);

    let r = refresh_answer(&app, &refresh1).await;
    r.assert_ok(200);
    let (access2, refresh2) = pair(&r);
    app.get("/api/auth/me", Some(&access2)).await.assert_ok(200);

    // The spent token comes back: theft.
    refresh_answer(&app, &refresh1)
        .await
        .assert_error(401, "unauthenticated");
    // The whole family is gone.
    refresh_answer(&app, &refresh2)
        .await
        .assert_error(401, "unauthenticated");
    app.get("/api/auth/me", Some(&access2))
        .await
        .assert_error(401, "unauthenticated");
    app.get("/api/auth/me", Some(&access1))
        .await
        .assert_error(401, "unauthenticated");
    // The other family works on.
    app.get("/api/auth/me", Some(&other_access)).await.assert_ok(200);
    let o = refresh_answer(&app, &other_refresh).await;
    o.assert_ok(200);
    app.get("/api/auth/me", Some(&pair(&o).0)).await.assert_ok(200);
    // And the user can still sign in afresh.
    login_answer(&app, "reuse@example.com", PASSWORD).await.assert_ok(200);
}

async fn concurrent_refreshes_at_most_one_wins(app: TestApp) {
    let a = register_ok(&app, "race@example.com").await;
    let (_, refresh) = pair(&a);
    let answers = join_all((0..8).map(|_| refresh_answer(&app, &refresh))).await;
    let mut ok = 0;
    for r in &answers {
        match r.status.as_u16() {
            200 => ok += 1,
            _ => r.assert_error(401, "unauthenticated"),
        }
    }
    assert!(ok <= 1, "{ok} concurrent refreshes of one token succeeded");
    // The token is spent either way.
    refresh_answer(&app, &refresh)
        .await
        .assert_error(401, "unauthenticated");
}

async fn logout_revokes_the_session_and_clears_cookies(app: TestApp) {
    let a = register_ok(&app, "logout@example.com").await;
    let (access, refresh) = pair(&a);
    let other = login_answer(&app, "logout@example.com", PASSWORD).await;
    let (other_access, other_refresh) = pair(&other);

    let out = app
        .post("/api/auth/logout", None, json!({"refreshToken": refresh}))
        .await;
    out.assert_ok(200);
    for name in ["accessToken", "refreshToken", "csrfToken"] {
        assert_eq!(out.cookie(name).as_deref(), Some(""), "{name}: {:?}", out.set_cookies());
        let attrs = cookie_attrs(&out, name);
        assert!(attrs.contains(&"max-age=0".into()), "{name}: {attrs:?}");
        assert!(attrs.contains(&"path=/".into()), "{name}: {attrs:?}");
    }
    refresh_answer(&app, &refresh)
        .await
        .assert_error(401, "unauthenticated");
    app.get("/api/auth/me", Some(&access))
        .await
        .assert_error(401, "unauthenticated");
    // Other sessions are untouched.
    app.get("/api/auth/me", Some(&other_access)).await.assert_ok(200);
    // Logging out twice is harmless.
    app.post("/api/auth/logout", None, json!({"refreshToken": refresh}))
        .await
        .assert_ok(200);
    // Without a body there is nothing to revoke, but the cookies are still cleared.
    let bare = send(&app, Method::POST, "/api/auth/logout", &[], None).await;
    bare.assert_ok(200);
    assert_eq!(bare.cookie("accessToken").as_deref(), Some(""));
    refresh_answer(&app, &other_refresh).await.assert_ok(200);
}

// ---------------------------------------------------------------------------------------------
// Cookies and CSRF
// ---------------------------------------------------------------------------------------------

async fn cookie_sessions_need_csrf_for_writes(app: TestApp) {
    let a = register_ok(&app, "cookie@example.com").await;
    let (bearer, _) = pair(&a);
    let access = a.cookie("accessToken").expect("accessToken cookie");
    let csrf = a.cookie("csrfToken").expect("csrfToken cookie");
    let only_access = format!("accessToken={access}");
    let both = format!("accessToken={access}; csrfToken={csrf}");

    // Reads need only the cookie.
    let me = send(&app, Method::GET, "/api/auth/me", &[("cookie", &only_access)], None).await;
    assert_eq!(me.assert_ok(200)["user"]["email"], "cookie@example.com");
    send(&app, Method::GET, "/api/tokenone/projects", &[("cookie", &both)], None)
        .await
        .assert_ok(200);

    let before = project_count(&app, &bearer).await;
    let body = || Some(("application/json", br#"{"name": "Via cookie"}"#.to_vec()));
    let refused: [Vec<(&str, &str)>; 4] = [
        vec![("cookie", &both)],
        vec![("cookie", &both), ("x-csrf-token", "wrong-token")],
        vec![("cookie", &only_access), ("x-csrf-token", &csrf)],
        vec![("cookie", &both), ("x-csrf-token", "")],
    ];
    for headers in &refused {
        send(&app, Method::POST, "/api/tokenone/projects", headers, body())
            .await
            .assert_error(403, "forbidden");
    }
    assert_eq!(
        project_count(&app, &bearer).await,
        before,
        "a refused write created a project"
    );

    let ok = send(
        &app,
        Method::POST,
        "/api/tokenone/projects",
        &[("cookie", &both), ("x-csrf-token", &csrf)],
        body(),
    )
    .await;
    assert_eq!(ok.assert_ok(201)["name"], "Via cookie");
    assert_eq!(project_count(&app, &bearer).await, before + 1);

    // Bearer requests need no CSRF token (even with stray cookies).
    let b = send(
        &app,
        Method::POST,
        "/api/tokenone/projects",
        &[
            ("authorization", &format!("Bearer {bearer}")),
            ("cookie", "csrfToken=zzz"),
        ],
        Some(("application/json", br#"{"name": "Via bearer"}"#.to_vec())),
    )
    .await;
    b.assert_ok(201);
    assert_eq!(project_count(&app, &bearer).await, before + 2);

    // A bad access cookie is 401, not a free pass.
    send(
        &app,
        Method::GET,
        "/api/auth/me",
        &[("cookie", "accessToken=garbage")],
        None,
    )
    .await
    .assert_error(401, "unauthenticated");
}

async fn cookie_refresh_and_logout_need_csrf(app: TestApp) {
    let a = register_ok(&app, "cookie-refresh@example.com").await;
    let refresh = a.cookie("refreshToken").expect("refreshToken cookie");
    let csrf = a.cookie("csrfToken").expect("csrfToken cookie");
    let cookies = format!("refreshToken={refresh}; csrfToken={csrf}");

    for headers in [
        vec![("cookie", cookies.as_str())],
        vec![("cookie", cookies.as_str()), ("x-csrf-token", "nope")],
    ] {
        send(&app, Method::POST, "/api/auth/refresh", &headers, None)
            .await
            .assert_error(403, "forbidden");
    }
    // The refusals did not spend the token.
    let r = send(
        &app,
        Method::POST,
        "/api/auth/refresh",
        &[("cookie", &cookies), ("x-csrf-token", &csrf)],
        None,
    )
    .await;
    r.assert_ok(200);
    assert_session_cookies(&r);
    let (access2, _) = pair(&r);

    // Logout through the cookie, same rule.
    let refresh2 = r.cookie("refreshToken").unwrap();
    let csrf2 = r.cookie("csrfToken").unwrap();
    let cookies2 = format!("refreshToken={refresh2}; csrfToken={csrf2}");
    send(&app, Method::POST, "/api/auth/logout", &[("cookie", &cookies2)], None)
        .await
        .assert_error(403, "forbidden");
    app.get("/api/auth/me", Some(&access2)).await.assert_ok(200);
    send(
        &app,
        Method::POST,
        "/api/auth/logout",
        &[("cookie", &cookies2), ("x-csrf-token", &csrf2)],
        None,
    )
    .await
    .assert_ok(200);
    app.get("/api/auth/me", Some(&access2))
        .await
        .assert_error(401, "unauthenticated");
    refresh_answer(&app, &refresh2)
        .await
        .assert_error(401, "unauthenticated");
}

// ---------------------------------------------------------------------------------------------
// Conventions
// ---------------------------------------------------------------------------------------------

async fn unknown_routes_and_wrong_methods_use_the_envelope(app: TestApp) {
    let token = app.admin_token().await;
    for path in ["/api/nope", "/api/auth/nope", "/api/tokenone/nothing/here", "/api"] {
        let a = app.get(path, Some(&token)).await;
        assert_eq!(a.status, 404, "{path}: {}", a.text);
        a.assert_error(404, "not_found");
    }
    app.post("/api/nope", None, json!({}))
        .await
        .assert_error(404, "not_found");
    for (method, path) in [
        (Method::DELETE, "/api/auth/login"),
        (Method::GET, "/api/auth/login"),
        (Method::PUT, "/api/auth/register"),
        (Method::POST, "/api/auth/me"),
        (Method::DELETE, "/api/tokenone/projects"),
    ] {
        let a = app.call(method.clone(), path, Some(&token), None).await;
        assert_eq!(a.status, 405, "{method} {path}: {}", a.text);
        assert_eq!(a.body["success"], json!(false), "{}", a.text);
        assert!(a.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", a.text);
        assert!(a.body["code"].as_str().is_some_and(|c| !c.is_empty()), "{}", a.text);
        assert!(a.body.get("data").is_none(), "{}", a.text);
    }
    // Success envelopes have no error fields.
    let me = app.get("/api/auth/me", Some(&token)).await;
    me.assert_ok(200);
    assert!(me.body.get("error").is_none() && me.body.get("code").is_none());
}

async fn request_ids_are_echoed_or_fresh(app: TestApp) {
    let sixty_four = "a".repeat(64);
    let sane = ["req-123", "abc.DEF:42_x-y", sixty_four.as_str()];
    for id in sane {
        for path in ["/healthz", "/api/auth/me", "/api/nope"] {
            let a = send(&app, Method::GET, path, &[("x-request-id", id)], None).await;
            assert_eq!(a.header("x-request-id"), Some(id), "{path}");
        }
    }
    let absent1 = app.get("/api/auth/me", None).await;
    let absent2 = app.get("/healthz", None).await;
    let id1 = absent1.header("x-request-id").expect("x-request-id").to_string();
    let id2 = absent2.header("x-request-id").expect("x-request-id").to_string();
    assert!(uuid_like(&id1), "{id1}");
    assert!(uuid_like(&id2), "{id2}");
    assert_ne!(id1, id2, "each request gets its own id");

    let long = "a".repeat(300);
    for insane in [long.as_str(), "has spaces in it", "semi;colon", "quote\"d", "<script>"] {
        let a = send(&app, Method::GET, "/api/auth/me", &[("x-request-id", insane)], None).await;
        let got = a.header("x-request-id").expect("x-request-id");
        assert_ne!(got, insane);
        assert!(uuid_like(got), "{insane:?} was replaced by {got:?}");
    }
}

/// Any lowercase hyphenated UUID.
fn uuid_like(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
}

async fn ids_are_uuidv7_and_times_have_milliseconds(app: TestApp) {
    let a = register_ok(&app, "ids@example.com").await;
    let u = &a.data()["user"];
    let user_id = u["id"].as_str().unwrap();
    let tenant_id = u["tenantId"].as_str().unwrap();
    assert!(is_uuid_v7(user_id), "{user_id}");
    assert!(is_uuid_v7(tenant_id), "{tenant_id}");
    let token = pair(&a).0;
    let p = app
        .post("/api/tokenone/projects", Some(&token), json!({"name": "Clock"}))
        .await;
    let d = p.assert_ok(201);
    assert!(is_uuid_v7(d["id"].as_str().unwrap()), "{d}");
    assert_eq!(d["tenantId"], json!(tenant_id));
    assert_eq!(d["createdBy"], json!(user_id));
    for k in ["createdAt", "updatedAt"] {
        let t = d[k].as_str().unwrap_or_else(|| panic!("{k}: {d}"));
        assert!(is_api_timestamp(t), "{k} = {t}");
        assert!(t.ends_with('Z') && t.as_bytes()[t.len() - 5] == b'.');
    }
    // Time-ordered: a later id sorts after an earlier one.
    let p2 = app
        .post("/api/tokenone/projects", Some(&token), json!({"name": "Later"}))
        .await;
    let id2 = p2.assert_ok(201)["id"].as_str().unwrap().to_string();
    assert!(is_uuid_v7(&id2));
    assert!(
        id2.as_str() > d["id"].as_str().unwrap(),
        "{id2} should sort after {}",
        d["id"]
    );
    // And the helpers themselves can say no.
    assert!(!is_uuid_v7("0192F0C8-0000-7000-8000-000000000000"));
    assert!(!is_uuid_v7("0192f0c8-0000-4000-8000-000000000000"));
    assert!(!is_api_timestamp("2026-04-19T22:34:12Z"));
    assert!(!is_api_timestamp("2026-04-19T22:34:12.000+00:00"));
    assert!(is_api_timestamp("2026-04-19T22:34:12.000Z"));
}

// ---------------------------------------------------------------------------------------------
// Platform admin
// ---------------------------------------------------------------------------------------------

async fn platform_admin_flag(app: TestApp) {
    let admin = login_answer(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(admin.assert_ok(200)["user"]["platformAdmin"], json!(true));
    let me = app.get("/api/auth/me", Some(&pair(&admin).0)).await;
    assert_eq!(me.assert_ok(200)["user"]["platformAdmin"], json!(true));
    assert_eq!(me.data()["user"]["email"], ADMIN_EMAIL);

    // A sign-up cannot make itself an admin.
    register_answer(
        &app,
        json!({"email": "wannabe@example.com", "password": PASSWORD, "name": "W", "platformAdmin": true}),
    )
    .await
    .assert_error(400, "invalid_request");
    let user = register_ok(&app, "wannabe@example.com").await;
    assert_eq!(user.data()["user"]["platformAdmin"], json!(false));
    let me = app.get("/api/auth/me", Some(&pair(&user).0)).await;
    assert_eq!(me.assert_ok(200)["user"]["platformAdmin"], json!(false));
    assert_ne!(me.data()["tenant"]["id"], admin.data()["user"]["tenantId"]);
}

both_backends!(
    register_returns_login_shape_and_cookies,
    register_duplicate_email_is_conflict,
    register_disabled_is_forbidden,
    register_validates_values,
    register_rejects_unknown_fields_and_wrong_types,
    register_rejects_malformed_json_and_wrong_content_type,
    register_body_over_limit_is_413,
    login_returns_exact_shape,
    login_failures_are_indistinguishable,
    login_is_throttled_per_email,
    jwt_claims_and_lifetimes,
    me_has_the_documented_shape,
    me_rejects_missing_and_bad_tokens,
    token_kinds_are_not_interchangeable,
    forged_and_expired_tokens_are_refused,
    refresh_rotates_the_pair,
    refresh_reuse_revokes_the_family_only,
    concurrent_refreshes_at_most_one_wins,
    logout_revokes_the_session_and_clears_cookies,
    cookie_sessions_need_csrf_for_writes,
    cookie_refresh_and_logout_need_csrf,
    unknown_routes_and_wrong_methods_use_the_envelope,
    request_ids_are_echoed_or_fresh,
    ids_are_uuidv7_and_times_have_milliseconds,
    platform_admin_flag,
);
