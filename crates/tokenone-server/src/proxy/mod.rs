//! The data plane: the three vendor-shaped proxy routes. Every answer, errors included, is in the
//! client's own shape. A call goes: key → scope/IP/project checks → rate limit → body → model →
//! native path → sandbox (dev keys) or upstream (live keys) → relay → one call record.

pub mod keycache;
pub mod ratelimit;
pub mod upstream;
pub mod writer;

use crate::door::Wait;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokenone_core::catalogue::{native_path, NoPath};
use tokenone_core::economics::{price_call, reservation_tokens, Levers, Usage as EconUsage};
use tokenone_core::events::{kinds, Event};
use tokenone_core::keys::{looks_like_key, KeyAuth, KeyMode};
use tokenone_core::model::{CallRecord, Settled};
use tokenone_core::routing::{
    classify_with_cues, decide, plan as route_plan, retryable as route_retryable, text_cues, Decision, Hints,
    PlanInput, Reasoning, RequestTraits, MIN_TIER_HEADER, ROUTE_HEADER,
};
use tokenone_core::services::wallet::Hold;
use tokenone_core::tiers::Tier;
use tokenone_core::time::now_ms;
use tokenone_providers::errors::{self, ErrorKind};
use tokenone_providers::{Shape, SseEvent, SseParser, StreamObserver, StreamTranslator, Usage};

/// Above this, `max_tokens` is not a real request (400 before anything goes upstream).
const MAX_OUTPUT_TOKENS: u64 = 1_000_000;

pub fn router() -> Router<AppState> {
    // Unknown paths and wrong methods answer in the shape's own error format too.
    let wrong = |shape: Shape| move || async move { no_route(shape, StatusCode::METHOD_NOT_ALLOWED) };
    let missing = |shape: Shape| move || async move { no_route(shape, StatusCode::NOT_FOUND) };
    Router::new()
        .route(
            "/v1/openai-proxy/v1/chat/completions",
            post(openai_chat).fallback(wrong(Shape::OpenAi)),
        )
        .route(
            "/v1/openai-proxy/v1/models",
            get(openai_models).fallback(wrong(Shape::OpenAi)),
        )
        .route(
            "/v1/openai-proxy/health",
            get(|s: State<AppState>| health(s, Shape::OpenAi)).fallback(wrong(Shape::OpenAi)),
        )
        .route("/v1/openai-proxy/{*rest}", any(missing(Shape::OpenAi)))
        .route(
            "/v1/anthropic-proxy/v1/messages",
            post(anthropic_messages).fallback(wrong(Shape::Anthropic)),
        )
        .route(
            "/v1/anthropic-proxy/health",
            get(|s: State<AppState>| health(s, Shape::Anthropic)).fallback(wrong(Shape::Anthropic)),
        )
        .route("/v1/anthropic-proxy/{*rest}", any(missing(Shape::Anthropic)))
        .route(
            "/v1/gemini-proxy/v1beta/models/{model}",
            post(gemini_generate).fallback(wrong(Shape::Gemini)),
        )
        .route(
            "/v1/gemini-proxy/v1/models/{model}",
            post(gemini_generate).fallback(wrong(Shape::Gemini)),
        )
        .route(
            "/v1/gemini-proxy/health",
            get(|s: State<AppState>| health(s, Shape::Gemini)).fallback(wrong(Shape::Gemini)),
        )
        .route("/v1/gemini-proxy/{*rest}", any(missing(Shape::Gemini)))
}

/// A path the shape does not serve (404) or a method its route does not take (405).
fn no_route(shape: Shape, status: StatusCode) -> Response {
    let message = if status == StatusCode::METHOD_NOT_ALLOWED {
        "method not allowed on this route"
    } else {
        "no such route"
    };
    (status, Json(errors::body_with_status(shape, status.as_u16(), message))).into_response()
}

async fn health(State(state): State<AppState>, shape: Shape) -> Response {
    let cfg = state.cfg.get();
    Json(json!({
        "status": "ok",
        "provider": shape.as_str(),
        "upstreamConfigured": upstream::configured(&cfg, shape.as_str()),
    }))
    .into_response()
}

/// A native-shape error answer.
pub fn error(shape: Shape, kind: ErrorKind, message: &str) -> Response {
    let status = StatusCode::from_u16(errors::status(kind)).unwrap_or(StatusCode::BAD_GATEWAY);
    (status, Json(errors::body(shape, kind, message))).into_response()
}

/// The presented key: `Authorization: Bearer`, `x-api-key`, and for Gemini `x-goog-api-key` or
/// `?key=`.
fn presented_key(shape: Shape, headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some((scheme, token)) = v.split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                return Some(token.trim().to_string());
            }
        }
    }
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_string());
    }
    if shape == Shape::Gemini {
        if let Some(v) = headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) {
            return Some(v.trim().to_string());
        }
        if let Some(q) = query {
            for pair in q.split('&') {
                if let Some(v) = pair.strip_prefix("key=") {
                    return Some(v.to_string());
                }
            }
        }
    }
    None
}

/// Key checks of auth.md: 401 for unknown/revoked/expired, 403 for scope, IP, archived or cold.
async fn authenticate(
    state: &AppState,
    shape: Shape,
    headers: &HeaderMap,
    query: Option<&str>,
    peer: Option<SocketAddr>,
) -> Result<Arc<KeyAuth>, Response> {
    let deny = |m: &str| error(shape, ErrorKind::Authentication, m);
    let Some(secret) = presented_key(shape, headers, query) else {
        return Err(deny(
            "missing API key: pass a TokenOne key as Authorization: Bearer or x-api-key",
        ));
    };
    if !looks_like_key(&secret) {
        return Err(deny("invalid API key"));
    }
    let hash = state.keys.hash(&secret);
    let auth = match state.key_cache.get(&state.store, &hash).await {
        Ok(Some(a)) => a,
        Ok(None) => return Err(deny("invalid API key")),
        Err(e) => {
            tracing::error!(error = %e, "key lookup failed");
            return Err(error(
                shape,
                ErrorKind::Unavailable,
                "the gateway cannot reach its database",
            ));
        }
    };
    if !auth.key.usable_at(now_ms()) {
        return Err(deny(if auth.key.revoked_at.is_some() {
            "API key has been revoked"
        } else {
            "API key has expired"
        }));
    }
    let forbid = |m: &str| error(shape, ErrorKind::Permission, m);
    if !auth.key.allows_shape(shape.as_str()) {
        return Err(forbid("this API key is not scoped for this API"));
    }
    if let Some(peer) = peer {
        if !auth.key.allows_ip(peer.ip()) {
            return Err(forbid("this API key may not be used from this address"));
        }
    }
    if auth.project_archived {
        return Err(forbid("the project is archived"));
    }
    if auth.project_cold {
        return Err(forbid("the project is in cold storage"));
    }
    Ok(auth)
}

async fn openai_models(State(state): State<AppState>, req: Request) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    if let Err(r) = authenticate(&state, Shape::OpenAi, req.headers(), req.uri().query(), peer).await {
        return r;
    }
    let routing = state.routing();
    let mut seen = std::collections::BTreeMap::new();
    for p in routing.catalogue.iter().filter(|p| p.enabled) {
        seen.entry(p.public_model.clone()).or_insert_with(|| p.provider.clone());
    }
    let data: Vec<Value> = seen
        .into_iter()
        .map(|(id, owner)| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": owner}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

async fn openai_chat(State(state): State<AppState>, req: Request) -> Response {
    handle(state, Shape::OpenAi, None, req).await
}

async fn anthropic_messages(State(state): State<AppState>, req: Request) -> Response {
    handle(state, Shape::Anthropic, None, req).await
}

async fn gemini_generate(State(state): State<AppState>, Path(model): Path<String>, req: Request) -> Response {
    let (model, action) = match model.rsplit_once(':') {
        Some((m, a)) => (m.to_string(), a.to_string()),
        None => (model, String::new()),
    };
    let stream = match action.as_str() {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => {
            return error(
                Shape::Gemini,
                ErrorKind::NotFound,
                "unknown operation: use :generateContent or :streamGenerateContent",
            )
        }
    };
    handle(state, Shape::Gemini, Some((model, stream)), req).await
}

/// Everything known about a call so far; becomes its call record.
struct Call {
    state: AppState,
    record: CallRecord,
    started: Instant,
    shape: Shape,
    recorded: bool,
    /// How the call is priced once delivered (set when its path is known).
    pricing: Option<Pricing>,
    /// The wallet reservation of a live call.
    hold: Option<Hold>,
    /// In shadow mode, the path routing would have delivered on (to price what it would save).
    shadow: Option<tokenone_core::catalogue::Path>,
}

/// What the settlement needs: the requested tier, the delivering path, and the levers in force
/// when the call started.
struct Pricing {
    requested_tier: Tier,
    path: tokenone_core::catalogue::Path,
    inferred: bool,
    levers: Arc<Levers>,
}

impl Call {
    /// Names `path` as the delivering path of the call (record and pricing).
    fn deliver_on(
        &mut self,
        path: &tokenone_core::catalogue::Path,
        inferred: bool,
        requested_tier: Tier,
        levers: &Arc<Levers>,
    ) {
        self.record.delivered_model = Some(path.public_model.clone());
        self.record.provider = Some(path.provider.clone());
        self.record.tier = Some(path.tier.as_str().into());
        self.pricing = Some(Pricing {
            requested_tier,
            path: path.clone(),
            inferred,
            levers: levers.clone(),
        });
    }

    /// Records the call once. A call that delivered (status 200, even if the stream was cut
    /// later) is priced for its usage; a live one settles its hold in a task the client's
    /// disconnect cannot cancel. A call that delivered nothing releases its hold.
    fn finish(&mut self, status: u16, error_code: Option<&str>) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        self.record.status = status;
        self.record.error_code = error_code.map(str::to_string);
        self.record.latency_ms = self.started.elapsed().as_millis() as i64;
        let mut record = std::mem::take(&mut self.record);
        let hold = self.hold.take();
        let delivered = status == 200;
        let figures = match (&self.pricing, delivered) {
            (Some(p), true) => {
                let usage = EconUsage {
                    input: record.input_tokens.max(0) as u64,
                    cached_input: record.cached_input_tokens.max(0) as u64,
                    output: record.output_tokens.max(0) as u64,
                };
                let s = price_call(usage, p.requested_tier, &p.path, p.inferred, &p.levers);
                if let Some(pick) = &self.shadow {
                    // What routing would have saved on this natively delivered call (same usage).
                    let routed = price_call(usage, p.requested_tier, pick, false, &p.levers);
                    record.shadow_savings_tokens =
                        s.burn_tokens.saturating_sub(routed.burn_tokens).min(i64::MAX as u64) as i64;
                }
                record.burn_tokens = s.burn_tokens.min(i64::MAX as u64) as i64;
                record.savings_tokens = s.savings_tokens.min(i64::MAX as u64) as i64;
                record.pass_back_tokens = s.pass_back_tokens.min(i64::MAX as u64) as i64;
                Some(s)
            }
            _ => None,
        };
        self.publish_call(&record);
        match (hold, figures) {
            (Some(hold), Some(s)) => {
                let state = self.state.clone();
                self.state.tasks.spawn(async move {
                    let money = state.wallet.settle(hold, s.burn_tokens, s.pass_back_tokens).await;
                    state.metrics.wallet_settlements.inc();
                    record.uncollected_tokens = (s.burn_tokens - money.debited).min(i64::MAX as u64) as i64;
                    state.writer.settle(Settled {
                        record,
                        money: Some(money),
                    });
                });
            }
            (hold, _) => {
                if let Some(h) = hold {
                    self.state.wallet.void(h);
                }
                self.state.writer.record(record);
            }
        }
    }

    /// `llm.call` to the project's watchers, priced (dev calls too: `mode` says which).
    fn publish_call(&self, r: &CallRecord) {
        let (Ok(project), Ok(tenant)) = (r.project_id.parse(), r.tenant_id.parse()) else {
            return;
        };
        self.state.events.publish(Event::now(
            project,
            tenant,
            None,
            kinds::LLM_CALL,
            json!({
                "callId": r.id, "keyId": r.key_id, "mode": r.mode, "shape": r.shape,
                "requestedModel": r.requested_model, "deliveredModel": r.delivered_model, "provider": r.provider,
                "tier": r.tier, "inputTokens": r.input_tokens.to_string(), "outputTokens": r.output_tokens.to_string(),
                "burnTokens": r.burn_tokens.to_string(), "savingsTokens": r.savings_tokens.to_string(),
                "passBackTokens": r.pass_back_tokens.to_string(), "latencyMs": r.latency_ms, "status": r.status,
            }),
        ));
    }

    fn set_usage(&mut self, u: Usage, estimated: bool) {
        self.record.input_tokens = u.input_tokens.min(i64::MAX as u64) as i64;
        self.record.cached_input_tokens = u.cached_input_tokens.min(u.input_tokens).min(i64::MAX as u64) as i64;
        self.record.output_tokens = u.output_tokens.min(i64::MAX as u64) as i64;
        self.record.usage_estimated = estimated;
    }

    /// A native error answer, recorded.
    fn fail(&mut self, kind: ErrorKind, code: &str, message: &str) -> Response {
        let resp = error(self.shape, kind, message);
        self.finish(resp.status().as_u16(), Some(code));
        resp
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // A call abandoned on any path is still recorded, once.
        if !self.recorded {
            self.finish(499, Some("client_disconnected"));
        }
    }
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn success_headers(
    resp: &mut Response,
    call_id: &str,
    path: &tokenone_core::catalogue::Path,
    limit: ratelimit::Decision,
) {
    let h = resp.headers_mut();
    let mut put = |k: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    put("x-tokenone-call-id", call_id);
    put("x-tokenone-provider", &path.provider);
    put("x-tokenone-model", &path.public_model);
    put("x-tokenone-tier", path.tier.as_str());
    put("x-ratelimit-limit", &limit.limit.to_string());
    put("x-ratelimit-remaining", &limit.remaining.to_string());
}

async fn handle(state: AppState, shape: Shape, gemini: Option<(String, bool)>, req: Request) -> Response {
    let started = Instant::now();
    // Before anything else, so a call turned away here is no call at all (nothing is queued).
    // Each call queues a call record and an `llm.call` event: both writers must keep up, and a
    // call waits for the two together no longer than for one.
    let mut wait = Wait::default();
    if !state.writer.admit(&mut wait).await || !state.hub.admit(&mut wait).await {
        return error(
            shape,
            ErrorKind::Unavailable,
            "the gateway is behind on writing call records and events; retry shortly",
        );
    }
    let (parts, body) = req.into_parts();
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let auth = match authenticate(&state, shape, &parts.headers, parts.uri.query(), peer).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let cfg = state.cfg.get();
    let key = &auth.key;
    let call_id = uuid::Uuid::now_v7();
    let mut call = Call {
        state: state.clone(),
        record: CallRecord {
            id: call_id,
            at: now_ms(),
            tenant_id: key.tenant_id.to_string(),
            project_id: key.project_id.to_string(),
            key_id: key.id.to_string(),
            mode: key.mode.as_str().into(),
            shape: shape.as_str().into(),
            ..Default::default()
        },
        started,
        shape,
        recorded: false,
        pricing: None,
        hold: None,
        shadow: None,
    };

    // Rate limit: the key's override gets a bucket of its own; otherwise the tenant's.
    let (bucket, per_minute) = match key.rate_limit_per_minute.for_shape(shape.as_str()) {
        Some(n) => (format!("key:{}:{}", key.id, shape.as_str()), n),
        None => {
            let n = match shape {
                Shape::OpenAi => cfg.ratelimit.openai_per_minute,
                Shape::Anthropic => cfg.ratelimit.anthropic_per_minute,
                Shape::Gemini => cfg.ratelimit.gemini_per_minute,
            };
            (format!("tenant:{}:{}", key.tenant_id, shape.as_str()), n)
        }
    };
    let limit = state.rate_limiter.check(&bucket, per_minute).await;
    if !limit.allowed {
        state.metrics.rate_limited.inc();
        let mut resp = call.fail(
            ErrorKind::RateLimited,
            "rate_limited",
            "rate limit exceeded; retry later",
        );
        let h = resp.headers_mut();
        h.insert(header::RETRY_AFTER, HeaderValue::from(limit.retry_after_secs));
        h.insert("x-ratelimit-limit", HeaderValue::from(limit.limit));
        h.insert("x-ratelimit-remaining", HeaderValue::from(0));
        return resp;
    }

    let bytes = match axum::body::to_bytes(body, cfg.proxy.max_body_bytes as usize).await {
        Ok(b) => b,
        Err(_) => {
            return call.fail(
                ErrorKind::PayloadTooLarge,
                "payload_too_large",
                "request body is larger than the limit",
            )
        }
    };
    let body: Value = match serde_json::from_slice(&bytes) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return call.fail(
                ErrorKind::InvalidRequest,
                "invalid_request",
                "the request body must be a JSON object",
            )
        }
    };
    let (model, stream) = match &gemini {
        Some((m, s)) => (m.clone(), *s),
        None => match tokenone_providers::request_model(shape, &body) {
            Some(m) => (m, tokenone_providers::request_stream(shape, &body)),
            None => return call.fail(ErrorKind::InvalidRequest, "invalid_request", "`model` is required"),
        },
    };
    call.record.requested_model = model.chars().take(200).collect();
    call.record.stream = stream;
    let mut features = match tokenone_providers::features(shape, &body) {
        Ok(f) => f,
        Err(e) => return call.fail(ErrorKind::InvalidRequest, "invalid_request", &e.to_string()),
    };
    if features.max_output_tokens.is_some_and(|m| m > MAX_OUTPUT_TOKENS) {
        return call.fail(
            ErrorKind::InvalidRequest,
            "invalid_request",
            "max tokens is out of range",
        );
    }

    let routing = state.routing();
    let levers = state.levers();
    let live = key.mode == KeyMode::Live;
    let resolved = match native_path(&routing.catalogue, &levers.model_tier_map, &model, |p| {
        !live || upstream::configured(&cfg, p)
    }) {
        Ok(r) => r,
        Err(NoPath::UnknownModel) => {
            return call.fail(
                ErrorKind::NotFound,
                "model_not_found",
                &format!("model `{}` is not available", call.record.requested_model),
            )
        }
        Err(NoPath::Unconfigured) => {
            return call.fail(
                ErrorKind::Unavailable,
                "upstream_unconfigured",
                "no upstream is configured for this model",
            )
        }
    };
    // Smart routing: classify the tier the request needs, apply the client's hints, plan the
    // cheapest eligible path, and decide under the router switch.
    let requested_tier = resolved.requested_tier;
    let hints = match Hints::parse(
        header_str(&parts.headers, ROUTE_HEADER).as_deref(),
        header_str(&parts.headers, MIN_TIER_HEADER).as_deref(),
    ) {
        Ok(h) => h,
        Err(m) => return call.fail(ErrorKind::InvalidRequest, "invalid_request", &m),
    };
    let est_in = tokenone_providers::estimate_tokens(features.text_chars);
    let cues = text_cues(&features.last_user_text);
    let traits = RequestTraits {
        est_prompt_tokens: est_in,
        max_output_tokens: features.max_output_tokens,
        tools: features.tools,
        images: features.images,
        json_mode: features.json_mode,
        has_code: features.has_code,
        reasoning_cues: cues.reasoning != Reasoning::None,
        turns: features.turns,
        system_chars: features.system_text.chars().count(),
        last_user_text: std::mem::take(&mut features.last_user_text),
    };
    let needed = hints.apply(classify_with_cues(&traits, requested_tier, cues), requested_tier);
    let native = resolved.path.clone();
    let decision = if hints.pin {
        Decision::native(&native)
    } else {
        let now = Instant::now();
        let eligible = |p: &tokenone_core::catalogue::Path| {
            p.enabled && (!live || upstream::configured(&cfg, &p.provider)) && !state.breakers.is_open(&p.id, now)
        };
        let plan = route_plan(&PlanInput {
            catalogue: &routing.catalogue,
            requested_model: &model,
            requested_tier,
            native: &native,
            needed: needed.needed,
            needs_tools: features.tools,
            needs_images: features.images,
            est_in,
            max_out: features.max_output_tokens,
            eligible: &eligible,
        });
        let (mode, pct) = state.router_mode();
        decide(mode, pct, call_id, &plan, &native)
    };
    call.record.requested_tier = Some(requested_tier.as_str().into());
    call.record.needed_tier = Some(needed.needed.as_str().into());
    call.record.reasons = needed.reasons.iter().map(|r| r.to_string()).collect();
    call.record.routed = decision.routed;
    call.record.shadow_pick = decision.shadow_pick.clone();
    if let Some(pick) = decision
        .shadow_pick
        .as_ref()
        .and_then(|id| routing.catalogue.iter().find(|p| &p.id == id))
    {
        call.shadow = Some(pick.clone());
    }
    let call_id_str = call_id.to_string();
    call.deliver_on(
        &decision.deliver,
        resolved.inferred && decision.deliver.id == native.id,
        requested_tier,
        &levers,
    );

    if live {
        // Reserve before anything goes upstream: the baseline cost of the estimated prompt and
        // the maximum output, at the requested tier.
        let max_out = features
            .max_output_tokens
            .unwrap_or(cfg.wallet.reserve_default_output_tokens);
        let amount = reservation_tokens(est_in, max_out, requested_tier, &levers);
        match state.wallet.reserve(key.tenant_id, amount).await {
            Ok(h) => {
                state.metrics.wallet_holds.inc();
                call.hold = Some(h);
            }
            Err(tokenone_core::Error::InsufficientFunds(_)) => {
                state.metrics.wallet_refusals.inc();
                return call.fail(
                    ErrorKind::InsufficientFunds,
                    "insufficient_funds",
                    "the wallet balance cannot cover this call; top up to continue",
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "wallet reservation failed");
                return call.fail(
                    ErrorKind::Unavailable,
                    "wallet_unavailable",
                    "the wallet is unavailable; retry shortly",
                );
            }
        }
    }

    if !live {
        return sandbox(call, &body, &decision.deliver, stream, limit, &call_id_str);
    }

    // Live: deliver on the decided path; a retryable failure before any byte reached the client
    // moves to the fallback.
    let anthropic_version = header_str(&parts.headers, "anthropic-version").filter(|_| shape == Shape::Anthropic);
    let anthropic_beta = header_str(&parts.headers, "anthropic-beta").filter(|_| shape == Shape::Anthropic);
    let attempts: Vec<tokenone_core::catalogue::Path> = std::iter::once(decision.deliver.clone())
        .chain(decision.fallback.clone())
        .collect();
    let overhead_before = started.elapsed();
    let mut sent_at = Instant::now();
    let mut strip_usage_chunk = false;
    let mut last_failure: Option<(ErrorKind, &'static str, String)> = None;
    let mut delivered: Option<(tokenone_core::catalogue::Path, reqwest::Response)> = None;
    let include_usage_requested = shape == Shape::OpenAi && tokenone_providers::openai_include_usage_requested(&body);
    for (i, path) in attempts.iter().enumerate() {
        if i > 0 {
            call.record.fallback_used = true;
            call.deliver_on(path, resolved.inferred && path.id == native.id, requested_tier, &levers);
        }
        let format_shape = shape_of(path.format);
        let Some(provider) = upstream::provider(&cfg, &path.provider) else {
            last_failure = Some((
                ErrorKind::Unavailable,
                "upstream_unconfigured",
                "unknown provider".into(),
            ));
            continue;
        };
        strip_usage_chunk = false;
        let payload: Bytes = if format_shape == shape {
            let rename = shape != Shape::Gemini && path.upstream_model != model;
            let ask_usage = shape == Shape::OpenAi && stream && !include_usage_requested;
            if rename || ask_usage {
                let mut b = body.clone();
                if rename {
                    tokenone_providers::set_model(shape, &mut b, &path.upstream_model);
                }
                if ask_usage {
                    strip_usage_chunk = tokenone_providers::ensure_openai_stream_usage(&mut b);
                }
                Bytes::from(serde_json::to_vec(&b).unwrap_or_default())
            } else {
                // Unchanged: forward the client's bytes exactly.
                bytes.clone()
            }
        } else {
            match tokenone_providers::translate_request(shape, format_shape, &body, &path.upstream_model, stream) {
                Ok(v) => Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
                Err(tokenone_providers::TranslateError::Unsupported(f)) => {
                    // A feature this path cannot carry makes it ineligible; never drop content.
                    last_failure = Some((
                        ErrorKind::InvalidRequest,
                        "unsupported_feature",
                        format!("the request uses `{f}`, which the delivering model cannot carry"),
                    ));
                    continue;
                }
                Err(e) => return call.fail(ErrorKind::InvalidRequest, "invalid_request", &e.to_string()),
            }
        };
        let url = upstream::url(&provider.base_url, path.format, &path.upstream_model, stream);
        let accept = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let req = upstream::post(&state.http, url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, accept)
            .body(payload);
        let req = upstream::auth_headers(
            req,
            path.format,
            provider.api_key.expose(),
            anthropic_version.as_deref(),
            anthropic_beta.as_deref(),
        );
        let now = Instant::now();
        state.breakers.record_attempt(&path.id, now);
        sent_at = now;
        let first_byte = Duration::from_millis(cfg.proxy.first_byte_timeout_ms.max(1));
        let sent = tokio::time::timeout(first_byte, req.send()).await;
        let labels = crate::metrics::ProviderLabels {
            provider: path.provider.clone(),
        };
        state
            .metrics
            .upstream_latency
            .get_or_create(&labels)
            .observe(now.elapsed().as_secs_f64());
        let failure = match sent {
            Err(_) => (
                ErrorKind::Timeout,
                "upstream_timeout",
                "the upstream did not answer in time".to_string(),
            ),
            Ok(Err(e)) if e.is_timeout() => (
                ErrorKind::Timeout,
                "upstream_timeout",
                "connecting to the upstream timed out".to_string(),
            ),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, provider = %path.provider, "upstream request failed");
                (
                    ErrorKind::UpstreamFailed,
                    "upstream_error",
                    "the upstream could not be reached".to_string(),
                )
            }
            Ok(Ok(r)) if r.status().is_success() => {
                state.breakers.record_success(&path.id, Instant::now());
                delivered = Some((path.clone(), r));
                break;
            }
            Ok(Ok(r)) => {
                let status = r.status().as_u16();
                if !route_retryable(Some(status), false, false) {
                    // The request's own fault (or a redirect): no fallback, no breaker.
                    return upstream_failure(call, r, &cfg).await;
                }
                (
                    ErrorKind::UpstreamFailed,
                    "upstream_error",
                    format!("the upstream failed ({status})"),
                )
            }
        };
        state.breakers.record_failure(&path.id, Instant::now());
        state.metrics.upstream_errors.get_or_create(&labels).inc();
        last_failure = Some(failure);
    }
    let Some((delivered, upstream_resp)) = delivered else {
        let (kind, code, message) = last_failure.unwrap_or((
            ErrorKind::UpstreamFailed,
            "upstream_error",
            "no upstream could deliver".into(),
        ));
        return call.fail(kind, code, &message);
    };
    let format_shape = shape_of(delivered.format);
    let idle = Duration::from_millis(cfg.proxy.idle_timeout_ms.max(1));
    if stream {
        // An answer that is not an event stream (an HTML error page, a JSON body) cannot be
        // relayed as one: it is a failed upstream, not an empty 200 stream.
        let is_sse = upstream_resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|c| c.trim_start().to_ascii_lowercase().starts_with("text/event-stream"));
        if !is_sse {
            return call.fail(
                ErrorKind::UpstreamFailed,
                "upstream_bad_response",
                "the upstream answered with something that is not an event stream",
            );
        }
        let relay = RelayOptions {
            strip_usage_chunk,
            client_wants_usage: include_usage_requested,
            input_chars: features.text_chars,
            idle,
        };
        let mut resp = relay_stream(call, upstream_resp, format_shape, &delivered, relay);
        success_headers(&mut resp, &call_id_str, &delivered, limit);
        return resp;
    }
    // Non-streaming: read the whole answer (bounded by the idle timeout per chunk).
    let body = match read_body(upstream_resp, idle, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(code) => {
            let kind = if code == "upstream_timeout" {
                ErrorKind::Timeout
            } else {
                ErrorKind::UpstreamFailed
            };
            return call.fail(kind, code, "the upstream answer could not be read");
        }
    };
    let upstream_wait = sent_at.elapsed();
    let mut answer: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return call.fail(
                ErrorKind::UpstreamFailed,
                "upstream_bad_response",
                "the upstream answered with something that is not JSON",
            )
        }
    };
    let usage = tokenone_providers::usage_from_response(format_shape, &answer);
    let out = if format_shape == shape {
        rewrite_model(shape, &mut answer, &delivered.public_model);
        answer
    } else {
        match tokenone_providers::translate_response(format_shape, shape, &answer, &delivered.public_model) {
            Ok(v) => v,
            Err(_) => {
                return call.fail(
                    ErrorKind::UpstreamFailed,
                    "upstream_bad_response",
                    "the upstream answer could not be translated",
                )
            }
        }
    };
    match usage {
        Some(u) => call.set_usage(u, false),
        None => {
            let text = tokenone_providers::response_text_chars(shape, &out);
            call.set_usage(estimate(features.text_chars, text), true);
        }
    }
    let mut resp = Json(out).into_response();
    let overhead = started.elapsed().saturating_sub(upstream_wait).max(overhead_before);
    success_headers(&mut resp, &call_id_str, &delivered, limit);
    set_overhead(&mut resp, overhead);
    state.metrics.overhead.observe(overhead.as_secs_f64());
    call.finish(200, None);
    resp
}

fn shape_of(f: tokenone_core::catalogue::Format) -> Shape {
    match f {
        tokenone_core::catalogue::Format::Openai => Shape::OpenAi,
        tokenone_core::catalogue::Format::Anthropic => Shape::Anthropic,
        tokenone_core::catalogue::Format::Gemini => Shape::Gemini,
    }
}

fn estimate(input_chars: usize, output_chars: usize) -> Usage {
    Usage {
        input_tokens: tokenone_providers::estimate_tokens(input_chars),
        cached_input_tokens: 0,
        output_tokens: tokenone_providers::estimate_tokens(output_chars),
    }
}

/// Names the delivered model in a same-shape answer.
fn rewrite_model(shape: Shape, answer: &mut Value, model: &str) {
    match shape {
        Shape::Gemini => {
            if answer.get("modelVersion").is_some() {
                answer["modelVersion"] = Value::String(model.into());
            }
        }
        _ => {
            if answer.get("model").is_some() {
                answer["model"] = Value::String(model.into());
            }
        }
    }
}

async fn read_body(resp: reqwest::Response, idle: Duration, max: usize) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    loop {
        match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => return Err("upstream_timeout"),
            Ok(None) => return Ok(out),
            Ok(Some(Err(_))) => return Err("upstream_cut"),
            Ok(Some(Ok(chunk))) => {
                if out.len() + chunk.len() > max {
                    return Err("upstream_too_large");
                }
                out.extend_from_slice(&chunk);
            }
        }
    }
}

/// An upstream non-2xx: the client's own fault (4xx but auth/rate) is relayed with the
/// upstream's status and message in the client's shape; anything else is 502.
async fn upstream_failure(mut call: Call, resp: reqwest::Response, cfg: &tokenone_core::config::Config) -> Response {
    let status = resp.status().as_u16();
    let idle = Duration::from_millis(cfg.proxy.idle_timeout_ms.max(1));
    let body = read_body(resp, idle, 1024 * 1024).await.unwrap_or_default();
    let client_fault = (400..500).contains(&status) && !matches!(status, 401 | 403 | 407 | 408 | 429);
    if client_fault {
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .or_else(|| v.pointer("/message"))
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| format!("the upstream refused the request ({status})"));
        let message: String = message.chars().take(2000).collect();
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        let resp = (code, Json(errors::body_with_status(call.shape, status, &message))).into_response();
        call.finish(status, Some("upstream_client_error"));
        return resp;
    }
    let code = if (300..400).contains(&status) {
        "upstream_redirect"
    } else {
        "upstream_error"
    };
    tracing::warn!(status, "upstream failed");
    call.fail(
        ErrorKind::UpstreamFailed,
        code,
        &format!("the upstream failed ({status})"),
    )
}

/// What the relay needs while the stream runs; dropping it (stream end or client gone) settles
/// the call exactly once.
struct Relay {
    call: Call,
    upstream: Option<futures::stream::BoxStream<'static, reqwest::Result<Bytes>>>,
    parser: SseParser,
    observer: Option<StreamObserver>,
    translator: Option<StreamTranslator>,
    client_shape: Shape,
    model: String,
    strip_usage_chunk: bool,
    input_chars: usize,
    idle: Duration,
    done: bool,
    outcome: Option<&'static str>,
}

impl Relay {
    fn usage(&self) -> Option<Usage> {
        match (&self.observer, &self.translator) {
            (Some(o), _) => o.usage(),
            (_, Some(t)) => t.usage(),
            _ => None,
        }
    }
    fn delivered_chars(&self) -> usize {
        match (&self.observer, &self.translator) {
            (Some(o), _) => o.delivered_text_chars(),
            (_, Some(t)) => t.delivered_text_chars(),
            _ => 0,
        }
    }

    /// Client-shape bytes for a batch of upstream events.
    fn convert(&mut self, events: Vec<SseEvent>) -> Vec<u8> {
        let mut out = Vec::new();
        for ev in events {
            if let Some(t) = &mut self.translator {
                for e in t.push(&ev) {
                    out.extend_from_slice(&e.encode());
                }
            } else if let Some(o) = &mut self.observer {
                // Parsed once for the observer, the usage-chunk check and the model rewrite.
                let data = tokenone_providers::parse_data(&ev);
                o.observe(&ev, data.as_ref());
                if self.strip_usage_chunk && data.as_ref().is_some_and(tokenone_providers::is_openai_usage_only) {
                    continue;
                }
                let ev = tokenone_providers::rewrite_model(self.client_shape, ev, data, &self.model);
                out.extend_from_slice(&ev.encode());
            }
        }
        out
    }

    fn closing(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let tail = self.parser.finish();
        out.extend(self.convert(tail));
        if let Some(t) = &mut self.translator {
            for e in t.finish() {
                out.extend_from_slice(&e.encode());
            }
        }
        out
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let (usage, estimated) = match self.usage() {
            Some(u) => (u, false),
            None => (estimate(self.input_chars, self.delivered_chars()), true),
        };
        self.call.set_usage(usage, estimated);
        let outcome = if self.done {
            self.outcome
        } else {
            Some("client_disconnected")
        };
        // The client got a 200 and a stream; how it ended is in the error code.
        self.call.finish(200, outcome);
    }
}

/// How a stream is relayed: whether to strip the OpenAI usage-only chunk (the proxy asked for it,
/// the client did not), whether an OpenAI client asked for usage, the request's text size (for
/// estimates) and the idle timeout between upstream events.
struct RelayOptions {
    strip_usage_chunk: bool,
    client_wants_usage: bool,
    input_chars: usize,
    idle: Duration,
}

fn relay_stream(
    call: Call,
    resp: reqwest::Response,
    upstream_shape: Shape,
    path: &tokenone_core::catalogue::Path,
    o: RelayOptions,
) -> Response {
    let RelayOptions {
        strip_usage_chunk,
        client_wants_usage,
        input_chars,
        idle,
    } = o;
    let client_shape = call.shape;
    let same = upstream_shape == client_shape;
    let relay = Relay {
        call,
        upstream: Some(resp.bytes_stream().boxed()),
        parser: SseParser::default(),
        observer: same.then(|| StreamObserver::new(upstream_shape)),
        translator: (!same).then(|| {
            StreamTranslator::new(upstream_shape, client_shape, &path.public_model)
                .with_openai_include_usage(client_wants_usage)
        }),
        client_shape,
        model: path.public_model.clone(),
        strip_usage_chunk,
        input_chars,
        idle,
        done: false,
        outcome: None,
    };
    let body = futures::stream::unfold(relay, |mut r| async move {
        loop {
            if r.done {
                return None;
            }
            let up = r.upstream.as_mut()?;
            match tokio::time::timeout(r.idle, up.next()).await {
                Ok(Some(Ok(chunk))) => {
                    let events = r.parser.push(&chunk);
                    let out = r.convert(events);
                    if !out.is_empty() {
                        return Some((Ok::<Bytes, std::io::Error>(Bytes::from(out)), r));
                    }
                }
                end => {
                    r.outcome = match end {
                        Ok(None) => None,
                        Ok(Some(Err(_))) => Some("upstream_cut"),
                        _ => Some("upstream_idle_timeout"),
                    };
                    let finished = r.observer.as_ref().map(|o| o.finished()).unwrap_or(true);
                    if r.outcome.is_none() && !finished {
                        r.outcome = Some("upstream_cut");
                    }
                    r.upstream = None;
                    r.done = true;
                    let out = r.closing();
                    if out.is_empty() {
                        return None;
                    }
                    return Some((Ok(Bytes::from(out)), r));
                }
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(body));
    set_sse_headers(&mut resp);
    resp
}

/// The headers every event-stream answer carries.
fn set_sse_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

/// `x-tokenone-overhead-ms`: the time the gateway itself spent, in milliseconds.
fn set_overhead(resp: &mut Response, overhead: Duration) {
    if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", overhead.as_secs_f64() * 1000.0)) {
        resp.headers_mut().insert("x-tokenone-overhead-ms", v);
    }
}

/// Dev keys: the built-in sandbox answers as the picked path would, in the client's shape.
fn sandbox(
    mut call: Call,
    body: &Value,
    path: &tokenone_core::catalogue::Path,
    stream: bool,
    limit: ratelimit::Decision,
    call_id: &str,
) -> Response {
    let model = &path.public_model;
    let mut resp = if stream {
        match tokenone_providers::sandbox::respond_stream(call.shape, body, model) {
            Ok((events, usage)) => {
                call.set_usage(usage, false);
                let chunks: Vec<Result<Bytes, std::io::Error>> = events.iter().map(|e| Ok(e.encode())).collect();
                let mut r = Response::new(Body::from_stream(futures::stream::iter(chunks)));
                set_sse_headers(&mut r);
                r
            }
            Err(e) => return call.fail(ErrorKind::InvalidRequest, "invalid_request", &e.to_string()),
        }
    } else {
        match tokenone_providers::sandbox::respond(call.shape, body, model) {
            Ok((answer, usage)) => {
                call.set_usage(usage, false);
                Json(answer).into_response()
            }
            Err(e) => return call.fail(ErrorKind::InvalidRequest, "invalid_request", &e.to_string()),
        }
    };
    success_headers(&mut resp, call_id, path, limit);
    if !stream {
        set_overhead(&mut resp, call.started.elapsed());
    }
    call.finish(200, None);
    resp
}
