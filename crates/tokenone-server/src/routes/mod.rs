//! The route table. Every `/api` route is registered here through `utoipa-axum`, so the router
//! and the OpenAPI document come from the same list and cannot drift apart.
//!
//! Public routes (no authentication): `/healthz`, `/readyz`, `/metrics`, `GET /api/openapi.json`,
//! `POST /api/auth/{register,login,refresh,logout}`, `POST /api/invites/accept`,
//! `GET /api/connectors/_public/providers`, and `GET /api/connectors/oauth/{provider}/callback`
//! (authenticated by its single-use OAuth state). Every other handler takes `AuthUser`,
//! `PlatformAdmin` or `ProjectGuard<_>`.

pub mod admin;
pub mod auth;
pub mod connectors;
pub mod economics;
pub mod events;
pub mod keys;
pub mod members;
pub mod ops;
pub mod projects;
pub mod router;
pub mod wallet;
pub mod workspace;

use crate::state::AppState;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "TokenOne", description = "Control plane of the TokenOne LLM gateway. Every answer is `{success, data}` or `{success: false, error, code}`."),
    modifiers(&BearerAuth),
    tags((name = "auth"), (name = "projects"), (name = "keys"), (name = "members"), (name = "wallet"), (name = "admin"), (name = "connectors"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// All `/api` routes with their documentation.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::accept_invite))
        .routes(routes!(projects::create_project, projects::list_projects))
        .routes(routes!(projects::get_project, projects::patch_project))
        .routes(routes!(keys::create_key, keys::list_keys))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(members::list_members, members::invite_member))
        .routes(routes!(members::change_role))
        .routes(routes!(economics::summary))
        .routes(routes!(economics::recent_picks))
        .routes(routes!(router::status))
        .routes(routes!(router::flip))
        .routes(routes!(wallet::balance))
        .routes(routes!(wallet::ledger))
        .routes(routes!(wallet::topup))
        .routes(routes!(wallet::verify))
        .routes(routes!(members::remove_member))
        .routes(routes!(admin::list_settings, admin::set_setting))
        .routes(routes!(admin::reset_setting))
        .routes(routes!(admin::list_levers))
        .routes(routes!(admin::export_calls))
        .routes(routes!(admin::get_lever, admin::set_lever))
        .routes(routes!(admin::lever_history))
        .routes(routes!(admin::runtime_status))
        .routes(routes!(admin::tenants))
        .routes(routes!(admin::audit_log))
        .routes(routes!(workspace::set_stage))
        .routes(routes!(workspace::set_archived))
        .routes(routes!(workspace::cold_move))
        .routes(routes!(workspace::cold_restore))
        .routes(routes!(workspace::export))
        .routes(routes!(workspace::handoff))
        .routes(routes!(events::project_events))
        .routes(routes!(connectors::providers))
        .routes(routes!(connectors::authorize))
        .routes(routes!(connectors::callback))
        .routes(routes!(connectors::connect_database))
        .routes(routes!(connectors::list_connectors))
        .routes(routes!(connectors::revoke_connector))
}
