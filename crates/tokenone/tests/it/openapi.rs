//! The OpenAPI document is generated from the route table and covers every REST route.

use tokenone_testkit::{both_backends, TestApp};

/// Every control-plane route this build serves, as `METHOD /path` with OpenAPI `{param}` syntax.
const ROUTES: &[&str] = &[
    "POST /api/auth/register",
    "POST /api/auth/login",
    "POST /api/auth/refresh",
    "POST /api/auth/logout",
    "GET /api/auth/me",
    "POST /api/invites/accept",
    "POST /api/tokenone/projects",
    "GET /api/tokenone/projects",
    "GET /api/tokenone/projects/{id}",
    "PATCH /api/tokenone/projects/{id}",
    "POST /api/tokenone/projects/{id}/keys",
    "GET /api/tokenone/projects/{id}/keys",
    "DELETE /api/tokenone/projects/{id}/keys/{keyId}",
    "GET /api/tokenone/summary",
    "GET /api/tokenone/projects/{id}/recent-upstream-picks",
    "GET /api/admin/smart-router-flip/status",
    "POST /api/admin/smart-router-flip",
    "GET /api/wallet/balance",
    "GET /api/wallet/ledger",
    "POST /api/admin/wallets/{tenantId}/topup",
    "GET /api/admin/ledger/verify",
    "GET /api/admin/settings",
    "POST /api/admin/settings",
    "DELETE /api/admin/settings/{key}",
    "GET /api/admin/commercial-levers",
    "GET /api/admin/commercial-levers/{name}",
    "PUT /api/admin/commercial-levers/{name}",
    "GET /api/admin/commercial-levers/{name}/history",
    "GET /api/admin/commercial-levers/llm-call-log/export",
    "GET /api/admin/runtime-config/status",
    "GET /api/admin/tenants",
    "GET /api/admin/audit-log",
    "GET /api/projects/{id}/members",
    "POST /api/projects/{id}/members",
    "PATCH /api/projects/{id}/members/{memberId}/role",
    "DELETE /api/projects/{id}/members/{memberId}",
    "POST /api/tokenone/projects/{id}/stage",
    "POST /api/tokenone/projects/{id}/archive",
    "POST /api/tokenone/projects/{id}/cold/move",
    "POST /api/tokenone/projects/{id}/cold/restore",
    "POST /api/tokenone/projects/{id}/export",
    "GET /api/tokenone/projects/{id}/handoff",
    "GET /api/tokenone/projects/{id}/events",
    // Public: the catalogue, and the OAuth callback (its state authenticates it).
    "GET /api/connectors/_public/providers",
    "GET /api/connectors/oauth/{provider}/callback",
    "POST /api/connectors/{type}/authorize",
    "POST /api/connectors/database/connect",
    "GET /api/connectors/{projectId}",
    "DELETE /api/connectors/{projectId}/{credentialId}",
];

async fn openapi_covers_every_route(app: TestApp) {
    let doc = app.get("/api/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    assert!(
        doc.body["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc.body["openapi"]
    );
    let paths = doc.body["paths"].as_object().expect("paths");
    for route in ROUTES {
        let (method, path) = route.split_once(' ').unwrap();
        let op = &paths.get(path).unwrap_or_else(|| panic!("{path} missing"))[method.to_lowercase()];
        assert!(op.is_object(), "{route} missing from the OpenAPI document");
        // And the route really exists: no 404 from the router.
        let concrete = path
            .replace("{id}", "00000000-0000-7000-8000-000000000000")
            .replace("{memberId}", "x")
            .replace("{keyId}", "x")
            .replace("{tenantId}", "x")
            .replace("{projectId}", "00000000-0000-7000-8000-000000000000")
            .replace("{credentialId}", "x")
            .replace("{type}", "github")
            .replace("{provider}", "github");
        let a = app.call(method.parse().unwrap(), &concrete, None, None).await;
        assert_ne!(a.body["error"], "no such route", "{route}");
        assert_ne!(a.status, 405, "{route}");
    }
    let documented: usize = paths.values().map(|p| p.as_object().map_or(0, |o| o.len())).sum();
    assert_eq!(
        documented,
        ROUTES.len(),
        "undocumented or unlisted routes: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
}

both_backends!(openapi_covers_every_route);
