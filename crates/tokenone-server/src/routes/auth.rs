//! `/api/auth/*` and `/api/invites/accept`: sessions, with cookies for browsers.

use crate::dto::*;
use crate::error::{ApiError, ApiResult, Created, Data};
use crate::extract::{check_csrf, cookie_value, ApiJson, AuthUser, OptionalJson};
use crate::state::AppState;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use cookie::{Cookie, SameSite};
use tokenone_core::services::identity::Session;
use tokenone_core::tokens::random_base62;
use tokenone_core::Error;

fn set_cookie(resp: &mut Response, c: Cookie<'static>) {
    if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn cookie(name: &'static str, value: String, max_age: i64, http_only: bool, secure: bool) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(http_only)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age))
        .build()
}

/// The login-shaped answer plus the `accessToken`, `refreshToken` and `csrfToken` cookies.
fn session_response(state: &AppState, s: &Session, created: bool) -> Response {
    let secure = state.cfg.get().server.secure_cookies;
    let mut resp = if created {
        Created(SessionDto::from(s)).into_response()
    } else {
        Data(SessionDto::from(s)).into_response()
    };
    let access_age = s.tokens.access_ttl_seconds as i64;
    let refresh_age = s.tokens.refresh_ttl_seconds as i64;
    set_cookie(
        &mut resp,
        cookie("accessToken", s.tokens.access_token.clone(), access_age, true, secure),
    );
    set_cookie(
        &mut resp,
        cookie(
            "refreshToken",
            s.tokens.refresh_token.clone(),
            refresh_age,
            true,
            secure,
        ),
    );
    set_cookie(
        &mut resp,
        cookie("csrfToken", random_base62(32), refresh_age, false, secure),
    );
    resp
}

fn clear_cookies(state: &AppState, resp: &mut Response) {
    let secure = state.cfg.get().server.secure_cookies;
    for (name, http_only) in [("accessToken", true), ("refreshToken", true), ("csrfToken", false)] {
        set_cookie(resp, cookie(name, String::new(), 0, http_only, secure));
    }
}

/// The refresh token from the body, or else from the cookie (then with the CSRF rule).
async fn refresh_token_of(req: Request, state: &AppState) -> ApiResult<Option<String>> {
    let (parts, body) = req.into_parts();
    let from_cookie = cookie_value(&parts, "refreshToken");
    let csrf = check_csrf(&parts);
    let OptionalJson(body) = OptionalJson::<RefreshBody>::from_request(Request::from_parts(parts, body), state).await?;
    if let Some(t) = body.and_then(|b| b.refresh_token) {
        return Ok(Some(t));
    }
    if from_cookie.is_some() {
        csrf?;
    }
    Ok(from_cookie)
}

#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterBody,
    responses((status = 201, description = "Account and tenant created; same data as login", body = SessionDto),
              (status = 400, body = ErrorEnvelope), (status = 403, description = "sign-up disabled", body = ErrorEnvelope),
              (status = 409, description = "email taken", body = ErrorEnvelope)))]
pub async fn register(State(state): State<AppState>, ApiJson(b): ApiJson<RegisterBody>) -> ApiResult<Response> {
    let s = state
        .identity
        .register(b.email, b.password, b.name, b.tenant_name)
        .await?;
    Ok(session_response(&state, &s, true))
}

#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, description = "`{user, tokens:{accessToken, refreshToken}}`; sets cookies", body = SessionDto),
              (status = 401, body = ErrorEnvelope), (status = 429, description = "too many failures for this email", body = ErrorEnvelope)))]
pub async fn login(State(state): State<AppState>, ApiJson(b): ApiJson<LoginBody>) -> ApiResult<Response> {
    let s = state.identity.login(&b.email, &b.password).await?;
    Ok(session_response(&state, &s, false))
}

#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body(content = RefreshBody, description = "or the `refreshToken` cookie"),
    responses((status = 200, description = "a new pair; the presented token is spent", body = SessionDto),
              (status = 401, description = "invalid, expired or reused (reuse revokes the session family)", body = ErrorEnvelope)))]
pub async fn refresh(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let token = refresh_token_of(req, &state)
        .await?
        .ok_or_else(|| ApiError(Error::unauthenticated("refresh token required")))?;
    let s = state.identity.refresh(&token).await?;
    Ok(session_response(&state, &s, false))
}

#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body(content = Option<RefreshBody>, description = "optional; else the cookie"),
    responses((status = 200, description = "session family revoked, cookies cleared")))]
pub async fn logout(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let token = refresh_token_of(req, &state).await?;
    state.identity.logout(token.as_deref()).await?;
    let mut resp = Data(serde_json::json!({"loggedOut": true})).into_response();
    clear_cookies(&state, &mut resp);
    Ok(resp)
}

#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = MeDto), (status = 401, body = ErrorEnvelope)))]
pub async fn me(State(state): State<AppState>, auth: AuthUser) -> ApiResult<Data<MeDto>> {
    let tenant = state.identity.tenant(auth.user.tenant_id).await?;
    Ok(Data(MeDto::new(&auth.user, &tenant)))
}

#[utoipa::path(post, path = "/api/invites/accept", tag = "members", request_body = AcceptInviteBody,
    responses((status = 200, description = "the login shape for the new user", body = SessionDto),
              (status = 404, description = "unknown token", body = ErrorEnvelope),
              (status = 409, description = "already accepted", body = ErrorEnvelope)))]
pub async fn accept_invite(
    State(state): State<AppState>,
    ApiJson(b): ApiJson<AcceptInviteBody>,
) -> ApiResult<Response> {
    let s = state
        .projects
        .accept_invite(&state.identity, &b.token, b.name, b.password)
        .await?;
    Ok(session_response(&state, &s, false))
}
