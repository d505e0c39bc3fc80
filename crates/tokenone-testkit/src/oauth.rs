//! A mock OAuth 2.0 provider on port 0 with an `/authorize` and a `/token` endpoint, strict the
//! way real ones are: it checks the client, the redirect URI, single use of codes, and that the
//! SHA-256 of the PKCE `code_verifier` matches the `code_challenge` it saw. Failures can be
//! scripted (a refused consent, a failing token endpoint).

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokenone_core::config::OAuthAppConfig;
use tokenone_core::secret::Secret;

pub const CLIENT_ID: &str = "mock-client-id";
pub const CLIENT_SECRET: &str = "mock-client-secret-value";

#[derive(Debug, Clone)]
struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    used: bool,
}

#[derive(Default)]
struct Inner {
    client_id: String,
    client_secret: String,
    access_token: String,
    refresh_token: String,
    scope: String,
    codes: HashMap<String, Grant>,
    deny_next: Option<String>,
    token_failures: VecDeque<(u16, Value)>,
    token_requests: usize,
    tokens_issued: usize,
    rejections: Vec<String>,
}

#[derive(Clone)]
pub struct MockOAuth {
    pub base_url: String,
    inner: Arc<Mutex<Inner>>,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse(base).expect("redirect_uri is a URL");
    url.query_pairs_mut().extend_pairs(pairs);
    url.to_string()
}

async fn authorize(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut inner = lock(&s);
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let problems: Vec<&str> = [
        (get("response_type") != "code", "response_type must be code"),
        (get("client_id") != inner.client_id, "unknown client_id"),
        (get("redirect_uri").is_empty(), "redirect_uri missing"),
        (get("state").len() < 22, "state missing or short"),
        (get("code_challenge").len() != 43, "code_challenge missing"),
        (
            get("code_challenge_method") != "S256",
            "code_challenge_method must be S256",
        ),
    ]
    .into_iter()
    .filter_map(|(bad, why)| bad.then_some(why))
    .collect();
    if !problems.is_empty() {
        return (StatusCode::BAD_REQUEST, problems.join("; ")).into_response();
    }
    let redirect_uri = get("redirect_uri");
    let location = if let Some(err) = inner.deny_next.take() {
        with_query(&redirect_uri, &[("error", &err), ("state", &get("state"))])
    } else {
        let code = uuid::Uuid::new_v4().simple().to_string();
        inner.codes.insert(
            code.clone(),
            Grant {
                client_id: get("client_id"),
                redirect_uri: redirect_uri.clone(),
                challenge: get("code_challenge"),
                used: false,
            },
        );
        with_query(&redirect_uri, &[("code", &code), ("state", &get("state"))])
    };
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

async fn token(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut inner = lock(&s);
    inner.token_requests += 1;
    if let Some((status, body)) = inner.token_failures.pop_front() {
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            Json(body),
        )
            .into_response();
    }
    let form_ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let text = String::from_utf8_lossy(&body).into_owned();
    let form: HashMap<String, String> = reqwest::Url::parse(&format!("http://x/?{text}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let grant = inner.codes.get(&get("code")).cloned();
    let verifier_hash =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(get("code_verifier").as_bytes()));
    let problem = if !form_ct {
        Some("not a form post")
    } else if get("grant_type") != "authorization_code" {
        Some("grant_type")
    } else if get("client_id") != inner.client_id || get("client_secret") != inner.client_secret {
        Some("client authentication")
    } else {
        match &grant {
            None => Some("unknown code"),
            Some(g) if g.used => Some("code already used"),
            Some(g) if g.client_id != get("client_id") => Some("code of another client"),
            Some(g) if g.redirect_uri != get("redirect_uri") => Some("redirect_uri mismatch"),
            Some(g) if g.challenge != verifier_hash => Some("PKCE verifier does not match the challenge"),
            Some(_) => None,
        }
    };
    if let Some(p) = problem {
        inner.rejections.push(p.to_string());
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": p})),
        )
            .into_response();
    }
    if let Some(g) = inner.codes.get_mut(&get("code")) {
        g.used = true;
    }
    inner.tokens_issued += 1;
    Json(json!({
        "access_token": inner.access_token,
        "token_type": "bearer",
        "scope": inner.scope,
        "refresh_token": inner.refresh_token,
        "expires_in": 28800,
    }))
    .into_response()
}

impl MockOAuth {
    /// Starts the provider with [`CLIENT_ID`] / [`CLIENT_SECRET`].
    pub async fn start() -> MockOAuth {
        let inner: Shared = Arc::new(Mutex::new(Inner {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            access_token: format!("gho_mock_{}", uuid::Uuid::new_v4().simple()),
            refresh_token: format!("ghr_mock_{}", uuid::Uuid::new_v4().simple()),
            scope: "repo,read:user".into(),
            ..Default::default()
        }));
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockOAuth {
            base_url: format!("http://{addr}"),
            inner,
        }
    }

    pub fn authorize_url(&self) -> String {
        format!("{}/authorize", self.base_url)
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url)
    }

    /// Points an OAuth app of the configuration at this provider.
    pub fn configure(&self, app: &mut OAuthAppConfig) {
        app.client_id = CLIENT_ID.into();
        app.client_secret = Secret::new(CLIENT_SECRET);
        app.authorize_url = self.authorize_url();
        app.token_url = self.token_url();
    }

    /// The tokens the next exchanges return.
    pub fn set_tokens(&self, access: &str, refresh: &str) {
        let mut i = lock(&self.inner);
        i.access_token = access.into();
        i.refresh_token = refresh.into();
    }

    pub fn access_token(&self) -> String {
        lock(&self.inner).access_token.clone()
    }

    /// The next consent is refused with this error (`access_denied`, ...).
    pub fn deny_next_authorize(&self, error: &str) {
        lock(&self.inner).deny_next = Some(error.into());
    }

    /// The next token request answers this, whatever it carries.
    pub fn fail_next_token(&self, status: u16, body: Value) {
        lock(&self.inner).token_failures.push_back((status, body));
    }

    /// Token requests received, and tokens issued.
    pub fn token_counts(&self) -> (usize, usize) {
        let i = lock(&self.inner);
        (i.token_requests, i.tokens_issued)
    }

    /// Why token requests were refused, in order.
    pub fn rejections(&self) -> Vec<String> {
        lock(&self.inner).rejections.clone()
    }

    /// Plays the user's browser at the provider: opens `url` (the authorisation URL TokenOne
    /// built) and returns where the provider redirects to (TokenOne's callback).
    pub async fn consent(&self, url: &str) -> String {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let resp = client.get(url).send().await.expect("authorize request");
        let status = resp.status();
        let location = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::FOUND, "authorize refused: {body}");
        location.expect("Location")
    }
}
