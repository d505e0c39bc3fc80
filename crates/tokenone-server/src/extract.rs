//! Extractors that put parsing and permissions in handler signatures: `ApiJson<T>` (strict JSON
//! bodies), `ApiQuery<T>`, `AuthUser`, `PlatformAdmin` and `ProjectGuard<MinRole>`. A handler
//! without one of the auth extractors is public; the public routes are listed in `routes::mod`.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::{header, request::Parts, Method, StatusCode};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use subtle::ConstantTimeEq;
use tokenone_core::ids::ProjectId;
use tokenone_core::model::{Actor, Ctx, User};
use tokenone_core::roles::ProjectRole;
use tokenone_core::services::projects::ProjectAccess;
use tokenone_core::Error;

/// The request id chosen by the request-id middleware.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn is_json(parts_ct: Option<&header::HeaderValue>) -> bool {
    parts_ct
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let mime = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError(Error::InvalidCode {
                code: "payload_too_large",
                message: "request body is too large".into(),
            })
        } else {
            ApiError::invalid("could not read the request body")
        }
    })
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
}

/// A JSON body: `Content-Type: application/json`, well-formed, no unknown fields (the DTOs deny
/// them). Anything else is 400; a body over the limit is 413.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::invalid("Content-Type must be application/json"));
        }
        let bytes = body_bytes(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A JSON body that may be absent (no body at all); present, it follows `ApiJson`'s rules.
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = is_json(req.headers().get(header::CONTENT_TYPE));
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(OptionalJson(None));
        }
        if !json {
            return Err(ApiError::invalid("Content-Type must be application/json"));
        }
        parse_json(&bytes).map(|v| OptionalJson(Some(v)))
    }
}

/// Query parameters; a malformed or unknown one is 400.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded_from_str(q).map(ApiQuery)
    }
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(q: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{q}")
            .parse()
            .map_err(|_| ApiError::invalid("malformed query string"))?,
    )
    .map(|axum::extract::Query(v)| v)
    .map_err(|e| ApiError::invalid(format!("invalid query: {}", e.body_text())))
}

pub fn cookie_value(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The session a request carries, if any: its bearer token, else its `accessToken` cookie
/// (for public routes that must notice a session without requiring one).
pub fn session_token(parts: &Parts) -> Option<String> {
    bearer(parts)
        .map(str::to_string)
        .or_else(|| cookie_value(parts, "accessToken"))
}

/// For a cookie-authenticated request that changes state, `X-CSRF-Token` must equal the
/// `csrfToken` cookie.
pub fn check_csrf(parts: &Parts) -> Result<(), ApiError> {
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let cookie = cookie_value(parts, "csrfToken").unwrap_or_default();
    let header = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if cookie.is_empty() || !bool::from(cookie.as_bytes().ct_eq(header.as_bytes())) {
        return Err(ApiError(Error::forbidden(
            "missing or wrong X-CSRF-Token for a cookie-authenticated request",
        )));
    }
    Ok(())
}

pub fn request_id(parts: &Parts) -> Option<String> {
    parts.extensions.get::<RequestId>().map(|r| r.0.clone())
}

/// A signed-in user: `Authorization: Bearer <access token>` or the `accessToken` cookie (with
/// the CSRF rule). The user is re-read from the database on every request.
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub user: User,
    pub request_id: Option<String>,
}

impl AuthUser {
    pub fn ctx(&self) -> Ctx {
        Ctx {
            actor: Actor {
                id: self.user.id,
                email: self.user.email.clone(),
            },
            request_id: self.request_id.clone(),
        }
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(u) = parts.extensions.get::<AuthUser>() {
            return Ok(u.clone());
        }
        let token = match bearer(parts) {
            Some(t) => t.to_string(),
            None => {
                let Some(t) = cookie_value(parts, "accessToken") else {
                    return Err(ApiError(Error::unauthenticated("authentication required")));
                };
                check_csrf(parts)?;
                t
            }
        };
        let user = state.identity.authenticate(&token).await?;
        let auth = AuthUser {
            user,
            request_id: request_id(parts),
        };
        parts.extensions.insert(auth.clone());
        Ok(auth)
    }
}

/// A platform admin (operator of the installation); the flag is the database's, read now.
pub struct PlatformAdmin(pub AuthUser);

impl FromRequestParts<AppState> for PlatformAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        if !auth.user.platform_admin {
            return Err(ApiError(Error::forbidden("platform admin only")));
        }
        Ok(PlatformAdmin(auth))
    }
}

/// The least project role a route needs, as a type.
pub trait MinRole: Send + Sync + 'static {
    const ROLE: ProjectRole;
}
pub struct Viewer;
pub struct Developer;
pub struct Admin;
impl MinRole for Viewer {
    const ROLE: ProjectRole = ProjectRole::Viewer;
}
impl MinRole for Developer {
    const ROLE: ProjectRole = ProjectRole::Developer;
}
impl MinRole for Admin {
    const ROLE: ProjectRole = ProjectRole::Admin;
}

/// Access to the project named by the `id` (or `projectId`) path segment, with at least role
/// `R`. A project of another tenant, or one the caller is not a member of, is 404; a member
/// with a lower role gets 403.
pub struct ProjectGuard<R: MinRole> {
    pub access: ProjectAccess,
    pub auth: AuthUser,
    _role: PhantomData<R>,
}

impl<R: MinRole> ProjectGuard<R> {
    pub fn ctx(&self) -> Ctx {
        self.auth.ctx()
    }
}

pub fn parse_id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, ApiError> {
    raw.parse::<T>().map_err(|_| ApiError(Error::not_found(what)))
}

impl<R: MinRole> FromRequestParts<AppState> for ProjectGuard<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError(Error::not_found("project")))?;
        let raw = params
            .iter()
            .find(|(k, _)| *k == "id" || *k == "projectId")
            .map(|(_, v)| v.to_string())
            .ok_or_else(|| ApiError(Error::not_found("project")))?;
        let id: ProjectId = parse_id(&raw, "project")?;
        let access = state.projects.access(&auth.user, id).await?;
        if !access.role().at_least(R::ROLE) {
            return Err(ApiError(Error::forbidden(format!(
                "this action needs the {} role or higher on the project",
                R::ROLE
            ))));
        }
        Ok(ProjectGuard {
            access,
            auth,
            _role: PhantomData,
        })
    }
}

/// `?limit=&cursor=` of a cursor-paged list (newest first).
#[derive(serde::Deserialize, utoipa::ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1..=200, default 50.
    pub limit: Option<i64>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page's `limit`: 1..=200, default 50.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    Ok(tokenone_core::validate::in_range(limit, 50, 1, 200, "limit")?)
}

/// A page's `cursor` (absent or empty: the first page).
pub fn page_cursor<T: std::str::FromStr>(raw: Option<&str>) -> Result<Option<T>, ApiError> {
    match raw {
        None | Some("") => Ok(None),
        Some(c) => c
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid("`cursor` is not valid")),
    }
}

/// Splits rows fetched with `limit + 1` into the page and its `nextCursor`: the key of the page's
/// last row when there is more.
pub fn split_page<T>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(key) } else { None };
    (rows, next)
}

#[cfg(test)]
mod page_tests {
    use super::*;

    #[test]
    fn a_page_has_a_next_cursor_only_when_more_rows_came() {
        let (rows, next) = split_page(vec![5, 4, 3], 2, |r| r.to_string());
        assert_eq!((rows, next), (vec![5, 4], Some("4".to_string())));
        let (rows, next) = split_page(vec![5, 4], 2, |r| r.to_string());
        assert_eq!((rows, next), (vec![5, 4], None));
        let (rows, next) = split_page(Vec::<i32>::new(), 2, |r| r.to_string());
        assert_eq!((rows, next), (vec![], None));
    }

    #[test]
    fn limits_and_cursors_are_checked() {
        assert_eq!(page_limit(None).ok(), Some(50));
        assert_eq!(page_limit(Some(200)).ok(), Some(200));
        assert!(page_limit(Some(0)).is_err() && page_limit(Some(201)).is_err());
        assert_eq!(page_cursor::<u64>(None).ok(), Some(None));
        assert_eq!(page_cursor::<u64>(Some("")).ok(), Some(None));
        assert_eq!(page_cursor::<u64>(Some("7")).ok(), Some(Some(7)));
        assert!(page_cursor::<u64>(Some("x")).is_err());
        assert!(page_cursor::<uuid::Uuid>(Some("not-a-uuid")).is_err());
    }
}
