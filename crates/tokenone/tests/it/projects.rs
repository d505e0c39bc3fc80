//! Projects and membership (workspace.md "Project" and "Membership", auth.md "Project roles"):
//! create/list/get/patch, invites and their acceptance, role changes, removal, the last-owner
//! rule and the 404-not-403 rule, each on SQLite and PostgreSQL.

use reqwest::Method;
use serde_json::{json, Value};
use tokenone_testkit::{both_backends, Answer, TestApp};

const PROJECTS: &str = "/api/tokenone/projects";
/// A well-formed UUID (version 7) that names no object.
const NO_SUCH_ID: &str = "0190f0a0-0000-7000-8000-000000000000";

fn project_path(pid: &str) -> String {
    format!("{PROJECTS}/{pid}")
}

fn members_path(pid: &str) -> String {
    format!("/api/projects/{pid}/members")
}

fn member_path(pid: &str, mid: &str) -> String {
    format!("/api/projects/{pid}/members/{mid}")
}

fn role_path(pid: &str, mid: &str) -> String {
    format!("/api/projects/{pid}/members/{mid}/role")
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("expected a string, got {v}"))
}

/// Lowercase hyphenated UUID of version 7.
#[track_caller]
fn assert_uuid_v7(v: &Value) {
    let id = s(v);
    assert_eq!(id.len(), 36, "{id}");
    for (i, c) in id.chars().enumerate() {
        if [8, 13, 18, 23].contains(&i) {
            assert_eq!(c, '-', "{id}");
        } else {
            assert!(c.is_ascii_digit() || ('a'..='f').contains(&c), "{id}");
        }
    }
    assert_eq!(&id[14..15], "7", "version 7: {id}");
}

/// RFC 3339 in UTC with milliseconds: `2026-04-19T22:34:12.000Z`.
#[track_caller]
fn assert_timestamp(v: &Value) {
    let t = s(v);
    let b = t.as_bytes();
    assert_eq!(t.len(), 24, "{t}");
    assert!(t.ends_with('Z'), "{t}");
    assert_eq!(b[10], b'T', "{t}");
    assert_eq!(b[19], b'.', "{t}");
    for i in [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22] {
        assert!(b[i].is_ascii_digit(), "{t}");
    }
}

#[track_caller]
fn assert_keys(v: &Value, keys: &[&str]) {
    let obj = v.as_object().unwrap_or_else(|| panic!("expected an object, got {v}"));
    let mut got: Vec<&str> = obj.keys().map(String::as_str).collect();
    got.sort_unstable();
    let mut want = keys.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "{v}");
}

const PROJECT_KEYS: [&str; 12] = [
    "id",
    "tenantId",
    "name",
    "description",
    "tags",
    "stage",
    "archived",
    "storageTier",
    "createdAt",
    "updatedAt",
    "createdBy",
    "myRole",
];

const MEMBER_KEYS: [&str; 8] = [
    "id",
    "userId",
    "email",
    "name",
    "role",
    "status",
    "invitedAt",
    "joinedAt",
];

/// A user of the inviter's tenant (tenant role `member`) who joined a project by invite.
struct Joined {
    token: String,
    user_id: String,
    member_id: String,
    email: String,
}

fn invite_token(url: &str) -> String {
    let (_, rest) = url.split_once("token=").unwrap_or_else(|| panic!("no token in {url}"));
    rest.split('&').next().unwrap_or_default().to_string()
}

async fn get_project(app: &TestApp, token: &str, pid: &str) -> Value {
    app.get(&project_path(pid), Some(token)).await.assert_ok(200).clone()
}

async fn list_projects(app: &TestApp, token: &str) -> Vec<Value> {
    let a = app.get(PROJECTS, Some(token)).await;
    a.assert_ok(200).as_array().expect("array").clone()
}

fn ids(list: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|p| s(&p["id"]).to_string()).collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn members(app: &TestApp, token: &str, pid: &str) -> Vec<Value> {
    let a = app.get(&members_path(pid), Some(token)).await;
    a.assert_ok(200).as_array().expect("array").clone()
}

fn by_email<'a>(list: &'a [Value], email: &str) -> Option<&'a Value> {
    list.iter().find(|m| s(&m["email"]).eq_ignore_ascii_case(email))
}

fn by_id<'a>(list: &'a [Value], id: &str) -> Option<&'a Value> {
    list.iter().find(|m| m["id"] == json!(id))
}

fn active_owners(list: &[Value]) -> usize {
    list.iter()
        .filter(|m| m["role"] == "owner" && m["status"] == "active")
        .count()
}

/// Invites `email` to `pid` with `role` (answer must be an `invited` member); returns the answer.
async fn invite(app: &TestApp, token: &str, pid: &str, email: &str, role: &str) -> Value {
    let a = app
        .post(&members_path(pid), Some(token), json!({"email": email, "role": role}))
        .await;
    a.assert_ok(201).clone()
}

async fn set_role(app: &TestApp, token: &str, pid: &str, mid: &str, role: &str) -> Answer {
    app.patch(&role_path(pid, mid), Some(token), json!({"role": role}))
        .await
}

async fn accept(app: &TestApp, invite_url: &str, name: &str) -> Answer {
    app.post(
        "/api/invites/accept",
        None,
        json!({"token": invite_token(invite_url), "name": name, "password": "joiner-password-1"}),
    )
    .await
}

/// Invites a new email with `role` and accepts the invite: a tenant `member` with that project role.
async fn join(app: &TestApp, inviter: &str, pid: &str, email: &str, role: &str) -> Joined {
    let inv = invite(app, inviter, pid, email, role).await;
    assert_eq!(inv["status"], "invited", "{inv}");
    let a = accept(app, s(&inv["inviteUrl"]), email.split('@').next().unwrap_or("joiner")).await;
    let d = a.assert_ok(200);
    Joined {
        token: s(&d["tokens"]["accessToken"]).to_string(),
        user_id: s(&d["user"]["id"]).to_string(),
        member_id: s(&inv["id"]).to_string(),
        email: email.to_string(),
    }
}

/// Sends `body` as raw bytes with the given content type.
async fn raw(app: &TestApp, method: Method, path: &str, token: &str, content_type: &str, body: &str) -> Answer {
    let resp = app
        .client
        .request(method, app.url(path))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    TestApp::answer(resp).await
}

// ---------------------------------------------------------------------------------------------
// create

async fn create_returns_the_project_and_makes_the_creator_owner(app: TestApp) {
    let (token, user_id, tenant_id) = app.register("ann@example.com").await;
    let a = app
        .post(
            PROJECTS,
            Some(&token),
            json!({"name": "Apollo", "description": "the first one", "tags": ["prod", "v1.2_beta-3"]}),
        )
        .await;
    let p = a.assert_ok(201).clone();
    assert_keys(&p, &PROJECT_KEYS);
    assert_uuid_v7(&p["id"]);
    assert_eq!(p["tenantId"], json!(tenant_id));
    assert_eq!(p["name"], "Apollo");
    assert_eq!(p["description"], "the first one");
    assert_eq!(p["tags"], json!(["prod", "v1.2_beta-3"]));
    assert_eq!(p["stage"], "build");
    assert_eq!(p["archived"], json!(false));
    assert_eq!(p["storageTier"], "hot");
    assert_eq!(p["createdBy"], json!(user_id));
    assert_eq!(p["myRole"], "owner");
    assert_timestamp(&p["createdAt"]);
    assert_timestamp(&p["updatedAt"]);
    assert_eq!(p["createdAt"], p["updatedAt"]);

    let pid = s(&p["id"]).to_string();
    assert_eq!(
        get_project(&app, &token, &pid).await,
        p,
        "GET answers what create answered"
    );
    assert_eq!(list_projects(&app, &token).await, vec![p.clone()]);

    let list = members(&app, &token, &pid).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let m = &list[0];
    assert_keys(m, &MEMBER_KEYS);
    assert_uuid_v7(&m["id"]);
    assert_eq!(m["userId"], json!(user_id));
    assert_eq!(m["email"], "ann@example.com");
    assert_eq!(m["name"], "ann");
    assert_eq!(m["role"], "owner");
    assert_eq!(m["status"], "active");
    assert_timestamp(&m["invitedAt"]);
    assert_timestamp(&m["joinedAt"]);

    // Optional fields default to empty.
    let a = app.post(PROJECTS, Some(&token), json!({"name": "Bare"})).await;
    let bare = a.assert_ok(201);
    assert_eq!(bare["description"], "");
    assert_eq!(bare["tags"], json!([]));
    assert_eq!(bare["myRole"], "owner");
    assert_ne!(bare["id"], p["id"]);
}

async fn create_validates_name_description_and_tags(app: TestApp) {
    let (token, _, _) = app.register("ann@example.com").await;
    let create = |body: Value| app.post(PROJECTS, Some(&token), body);
    let mut created = Vec::new();

    // Name: 1..=100 Unicode scalar values.
    for (name, ok) in [
        ("x".to_string(), true),
        ("é".repeat(100), true),
        ("x".repeat(100), true),
        ("🦀".repeat(100), true),
        ("  spaced out  ".to_string(), true),
        (" ".to_string(), true),
        (String::new(), false),
        ("é".repeat(101), false),
        ("x".repeat(101), false),
        ("🦀".repeat(101), false),
        ("bad\u{0}name".to_string(), false),
    ] {
        let a = create(json!({"name": name})).await;
        if ok {
            let p = a.assert_ok(201);
            assert_eq!(p["name"], json!(name), "stored as given");
            created.push(s(&p["id"]).to_string());
        } else {
            a.assert_error(400, "invalid_request");
        }
    }

    // Description: at most 2000.
    for (description, ok) in [
        (String::new(), true),
        ("d".repeat(2000), true),
        ("é".repeat(2000), true),
        ("d".repeat(2001), false),
        ("é".repeat(2001), false),
    ] {
        let a = create(json!({"name": "P", "description": description})).await;
        if ok {
            let p = a.assert_ok(201);
            assert_eq!(p["description"], json!(description));
            created.push(s(&p["id"]).to_string());
        } else {
            a.assert_error(400, "invalid_request");
        }
    }

    // Tags: at most 20, each 1..=40 of [a-z0-9._-].
    let twenty: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    let twenty_one: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    for (tags, ok) in [
        (json!([]), true),
        (json!(twenty), true),
        (json!(["a".repeat(40)]), true),
        (json!(["a-b_c.d-0123456789"]), true),
        (json!(twenty_one), false),
        (json!(["a".repeat(41)]), false),
        (json!([""]), false),
        (json!(["Prod"]), false),
        (json!(["with space"]), false),
        (json!(["é"]), false),
        (json!(["ok", "no/slash"]), false),
    ] {
        let a = create(json!({"name": "P", "tags": tags})).await;
        if ok {
            let p = a.assert_ok(201);
            assert_eq!(p["tags"], tags);
            created.push(s(&p["id"]).to_string());
        } else {
            a.assert_error(400, "invalid_request");
        }
    }

    // Nothing was created by a refused request.
    assert_eq!(ids(&list_projects(&app, &token).await), sorted(created));
}

async fn create_rejects_unknown_fields_wrong_types_and_anonymous_callers(app: TestApp) {
    let (token, _, _) = app.register("ann@example.com").await;
    let (_, _, other_tenant) = app.register("bob@example.com").await;
    for body in [
        json!({"name": "P", "tenantId": other_tenant}),
        json!({"name": "P", "stage": "live"}),
        json!({"name": "P", "archived": true}),
        json!({"name": "P", "storageTier": "cold"}),
        json!({"name": "P", "myRole": "owner"}),
        json!({"name": "P", "createdBy": NO_SUCH_ID}),
        json!({"name": "P", "id": NO_SUCH_ID}),
        json!({"name": "P", "tenant_id": other_tenant}),
        json!({"name": 5}),
        json!({"name": null}),
        json!({"name": ["P"]}),
        json!({"name": "P", "description": 7}),
        json!({"name": "P", "tags": "prod"}),
        json!({"name": "P", "tags": [1, 2]}),
        json!({"description": "no name"}),
        json!({}),
        json!([]),
        json!("P"),
    ] {
        app.post(PROJECTS, Some(&token), body.clone())
            .await
            .assert_error(400, "invalid_request");
    }
    raw(&app, Method::POST, PROJECTS, &token, "application/json", "{\"name\": ")
        .await
        .assert_error(400, "invalid_request");
    raw(&app, Method::POST, PROJECTS, &token, "text/plain", "{\"name\": \"P\"}")
        .await
        .assert_error(400, "invalid_request");

    // Over the 1 MiB limit of `/api`.
    let huge = json!({"name": "P", "description": "d".repeat(1_100_000)});
    app.post(PROJECTS, Some(&token), huge)
        .await
        .assert_error(413, "payload_too_large");

    app.post(PROJECTS, None, json!({"name": "P"}))
        .await
        .assert_error(401, "unauthenticated");
    app.post(PROJECTS, Some("not-a-token"), json!({"name": "P"}))
        .await
        .assert_error(401, "unauthenticated");
    app.get(PROJECTS, None).await.assert_error(401, "unauthenticated");

    assert!(list_projects(&app, &token).await.is_empty(), "nothing was created");
}

// ---------------------------------------------------------------------------------------------
// list

async fn list_shows_only_the_callers_visible_projects(app: TestApp) {
    let (ann, _, ann_tenant) = app.register("ann@example.com").await;
    let (bob, _, bob_tenant) = app.register("bob@example.com").await;
    assert_ne!(ann_tenant, bob_tenant);
    assert!(list_projects(&app, &ann).await.is_empty());

    let p1 = app.create_project(&ann, "P1").await;
    let p2 = app.create_project(&ann, "P2").await;
    let q1 = app.create_project(&bob, "Q1").await;

    let ann_list = list_projects(&app, &ann).await;
    assert_eq!(ids(&ann_list), sorted(vec![p1.clone(), p2.clone()]));
    assert!(ann_list.iter().all(|p| p["tenantId"] == json!(ann_tenant)));
    assert!(ann_list.iter().all(|p| p["myRole"] == "owner"));
    assert_eq!(ids(&list_projects(&app, &bob).await), vec![q1.clone()]);

    // A tenant member sees only the projects they belong to, with their role there.
    let mia = join(&app, &ann, &p1, "mia@example.com", "viewer").await;
    let mia_list = list_projects(&app, &mia.token).await;
    assert_eq!(ids(&mia_list), vec![p1.clone()]);
    assert_eq!(mia_list[0]["myRole"], "viewer");
    assert_eq!(mia_list[0]["tenantId"], json!(ann_tenant));

    // A project the member creates is theirs; the tenant owner sees it too, as owner.
    let p3 = app.create_project(&mia.token, "P3").await;
    let mia_list = list_projects(&app, &mia.token).await;
    assert_eq!(ids(&mia_list), sorted(vec![p1.clone(), p3.clone()]));
    let p3_view = mia_list.iter().find(|p| p["id"] == json!(p3)).expect("p3");
    assert_eq!(p3_view["myRole"], "owner");
    let ann_list = list_projects(&app, &ann).await;
    assert_eq!(ids(&ann_list), sorted(vec![p1.clone(), p2.clone(), p3.clone()]));
    assert!(ann_list.iter().all(|p| p["myRole"] == "owner"), "{ann_list:?}");
    // Bob's view never changes.
    assert_eq!(ids(&list_projects(&app, &bob).await), vec![q1]);

    // Parameter handling.
    for q in ["?includeArchived=true", "?includeArchived=false", "?"] {
        let a = app.get(&format!("{PROJECTS}{q}"), Some(&mia.token)).await;
        let list = a.assert_ok(200).as_array().expect("array").clone();
        assert_eq!(ids(&list), sorted(vec![p1.clone(), p3.clone()]), "{q}");
    }
    for q in [
        "?includeArchived=maybe",
        "?includeArchived=1",
        "?includeArchived=",
        "?include_archived=true",
        "?foo=bar",
        "?includeArchived=true&foo=bar",
        "?tenantId=x",
    ] {
        app.get(&format!("{PROJECTS}{q}"), Some(&ann))
            .await
            .assert_error(400, "invalid_request");
    }
}

// ---------------------------------------------------------------------------------------------
// get / patch

async fn hidden_projects_are_404_for_get_and_patch(app: TestApp) {
    let (ann, _, _) = app.register("ann@example.com").await;
    let (bob, _, _) = app.register("bob@example.com").await;
    let p1 = app.create_project(&ann, "P1").await;
    let p2 = app.create_project(&ann, "P2").await;
    let q1 = app.create_project(&bob, "Q1").await;
    let mia = join(&app, &ann, &p1, "mia@example.com", "admin").await;
    let p2_before = get_project(&app, &ann, &p2).await;
    let q1_before = get_project(&app, &bob, &q1).await;

    let cases: Vec<(&str, String)> = vec![
        // another tenant's project, both ways
        (ann.as_str(), q1.clone()),
        (bob.as_str(), p1.clone()),
        (bob.as_str(), p2.clone()),
        // a same-tenant project the member does not belong to
        (mia.token.as_str(), p2.clone()),
        // not a UUID, and a UUID that names nothing
        (ann.as_str(), "not-a-uuid".to_string()),
        (ann.as_str(), "12345".to_string()),
        (ann.as_str(), NO_SUCH_ID.to_string()),
        (mia.token.as_str(), NO_SUCH_ID.to_string()),
    ];
    for (token, pid) in &cases {
        let a = app.get(&project_path(pid), Some(token)).await;
        a.assert_error(404, "not_found");
        let a = app
            .patch(&project_path(pid), Some(token), json!({"name": "Hijacked"}))
            .await;
        a.assert_error(404, "not_found");
        // Even a bad body gives nothing away.
        let a = app
            .patch(&project_path(pid), Some(token), json!({"stage": "live"}))
            .await;
        a.assert_error(404, "not_found");
    }
    // The 404 for a hidden project matches the one for a project that does not exist.
    let hidden = app.get(&project_path(&q1), Some(&ann)).await;
    let missing = app.get(&project_path(NO_SUCH_ID), Some(&ann)).await;
    assert_eq!(hidden.body, missing.body);

    assert_eq!(get_project(&app, &ann, &p2).await, p2_before);
    assert_eq!(get_project(&app, &bob, &q1).await, q1_before);
    app.get(&project_path(&p1), None)
        .await
        .assert_error(401, "unauthenticated");
    // The member does see their own project.
    assert_eq!(get_project(&app, &mia.token, &p1).await["myRole"], "admin");
}

async fn patch_needs_developer_and_updates_fields(app: TestApp) {
    let (ann, _, _) = app.register("ann@example.com").await;
    let pid = app.create_project(&ann, "Apollo").await;
    let viewer = join(&app, &ann, &pid, "vic@example.com", "viewer").await;
    let dev = join(&app, &ann, &pid, "dev@example.com", "developer").await;
    let admin = join(&app, &ann, &pid, "ada@example.com", "admin").await;
    let before = get_project(&app, &ann, &pid).await;

    // A viewer can read but not patch.
    assert_eq!(get_project(&app, &viewer.token, &pid).await["myRole"], "viewer");
    app.patch(
        &project_path(&pid),
        Some(&viewer.token),
        json!({"name": "Viewer was here"}),
    )
    .await
    .assert_error(403, "forbidden");
    app.patch(&project_path(&pid), Some(&viewer.token), json!({}))
        .await
        .assert_error(403, "forbidden");
    assert_eq!(get_project(&app, &ann, &pid).await, before);

    // A developer can.
    let a = app
        .patch(
            &project_path(&pid),
            Some(&dev.token),
            json!({"name": "Apollo 11", "description": "to the moon", "tags": ["space", "nasa"]}),
        )
        .await;
    let p = a.assert_ok(200).clone();
    assert_keys(&p, &PROJECT_KEYS);
    assert_eq!(p["id"], before["id"]);
    assert_eq!(p["name"], "Apollo 11");
    assert_eq!(p["description"], "to the moon");
    assert_eq!(p["tags"], json!(["space", "nasa"]));
    assert_eq!(p["myRole"], "developer");
    assert_eq!(p["createdAt"], before["createdAt"]);
    assert_eq!(p["createdBy"], before["createdBy"]);
    assert_eq!(p["tenantId"], before["tenantId"]);
    assert_eq!(p["stage"], "build");
    assert_eq!(p["archived"], json!(false));
    assert_eq!(p["storageTier"], "hot");
    assert_timestamp(&p["updatedAt"]);
    assert_ne!(p["updatedAt"], before["updatedAt"], "updatedAt moves");
    assert!(s(&p["updatedAt"]) > s(&before["updatedAt"]));
    let mut reread = get_project(&app, &dev.token, &pid).await;
    assert_eq!(reread, p, "the change is stored");
    reread["myRole"] = json!("owner");
    assert_eq!(get_project(&app, &ann, &pid).await, reread);

    // A partial patch keeps the other fields; an admin may patch too.
    let a = app
        .patch(&project_path(&pid), Some(&admin.token), json!({"description": ""}))
        .await;
    let p2 = a.assert_ok(200).clone();
    assert_eq!(p2["name"], "Apollo 11");
    assert_eq!(p2["description"], "");
    assert_eq!(p2["tags"], json!(["space", "nasa"]));
    assert_eq!(p2["myRole"], "admin");
    let a = app
        .patch(
            &project_path(&pid),
            Some(&ann),
            json!({"tags": [], "name": "é".repeat(100)}),
        )
        .await;
    let p3 = a.assert_ok(200).clone();
    assert_eq!(p3["tags"], json!([]));
    assert_eq!(p3["name"], json!("é".repeat(100)));
    assert_eq!(p3["description"], "");
    assert_eq!(
        get_project(&app, &viewer.token, &pid).await["name"],
        json!("é".repeat(100))
    );
}

async fn patch_validation_errors_change_nothing(app: TestApp) {
    let (ann, _, tenant) = app.register("ann@example.com").await;
    let pid = app.create_project(&ann, "Apollo").await;
    let before = get_project(&app, &ann, &pid).await;
    let twenty_one: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    for body in [
        json!({"name": ""}),
        json!({"name": "é".repeat(101)}),
        json!({"name": "x".repeat(101)}),
        json!({"name": "bad\u{7}name"}),
        json!({"description": "d".repeat(2001)}),
        json!({"tags": twenty_one}),
        json!({"tags": ["UPPER"]}),
        json!({"tags": ["a".repeat(41)]}),
        json!({"tags": [""]}),
        // valid fields together with an invalid one change nothing either
        json!({"name": "Fine", "tags": ["Not Fine"]}),
        json!({"name": "Fine", "description": "d".repeat(2001)}),
        // unknown fields
        json!({"stage": "live"}),
        json!({"archived": true}),
        json!({"storageTier": "cold"}),
        json!({"tenantId": tenant}),
        json!({"id": NO_SUCH_ID}),
        json!({"createdBy": NO_SUCH_ID}),
        json!({"name": "Fine", "myRole": "owner"}),
        // wrong types
        json!({"name": 1}),
        json!({"description": false}),
        json!({"tags": "space"}),
        json!({"tags": [null]}),
        json!([]),
        json!("name"),
    ] {
        app.patch(&project_path(&pid), Some(&ann), body.clone())
            .await
            .assert_error(400, "invalid_request");
        assert_eq!(get_project(&app, &ann, &pid).await, before, "after {body}");
    }
    raw(&app, Method::PATCH, &project_path(&pid), &ann, "application/json", "{")
        .await
        .assert_error(400, "invalid_request");
    raw(
        &app,
        Method::PATCH,
        &project_path(&pid),
        &ann,
        "text/plain",
        "{\"name\": \"X\"}",
    )
    .await
    .assert_error(400, "invalid_request");
    app.patch(&project_path(&pid), None, json!({"name": "Anon"}))
        .await
        .assert_error(401, "unauthenticated");
    assert_eq!(get_project(&app, &ann, &pid).await, before);
}

// ---------------------------------------------------------------------------------------------
// members: list and invite

async fn member_list_shape_and_who_may_read_it(app: TestApp) {
    let (ann, ann_id, _) = app.register("ann@example.com").await;
    let pid = app.create_project(&ann, "Apollo").await;
    let viewer = join(&app, &ann, &pid, "vic@example.com", "viewer").await;
    let pending = invite(&app, &ann, &pid, "Pending@Example.com", "developer").await;

    let list = members(&app, &viewer.token, &pid).await;
    assert_eq!(list.len(), 3, "{list:?}");
    for m in &list {
        assert_keys(m, &MEMBER_KEYS);
        assert_uuid_v7(&m["id"]);
        assert_timestamp(&m["invitedAt"]);
    }
    let owner = by_email(&list, "ann@example.com").expect("owner");
    assert_eq!(owner["userId"], json!(ann_id));
    assert_eq!(owner["role"], "owner");
    assert_eq!(owner["status"], "active");

    let v = by_id(&list, &viewer.member_id).expect("viewer");
    assert_eq!(v["userId"], json!(viewer.user_id));
    assert_eq!(v["email"], "vic@example.com");
    assert_eq!(v["name"], "vic");
    assert_eq!(v["role"], "viewer");
    assert_eq!(v["status"], "active");
    assert_timestamp(&v["joinedAt"]);

    let p = by_id(&list, s(&pending["id"])).expect("pending");
    assert_eq!(p["email"], "Pending@Example.com", "stored as given");
    assert_eq!(p["userId"], Value::Null);
    assert_eq!(p["joinedAt"], Value::Null);
    assert_eq!(p["status"], "invited");
    assert_eq!(p["role"], "developer");
    assert_eq!(p["name"], "");

    // Everyone on the project reads the same list; the token is never shown again.
    assert_eq!(members(&app, &ann, &pid).await, list);
    assert!(!members(&app, &ann, &pid)
        .await
        .iter()
        .any(|m| m.get("inviteUrl").is_some()));
    app.get(&members_path(&pid), None)
        .await
        .assert_error(401, "unauthenticated");
}

async fn invite_needs_admin_and_owner_for_owner(app: TestApp) {
    let (ann, _, _) = app.register("ann@example.com").await;
    let pid = app.create_project(&ann, "Apollo").await;
    let viewer = join(&app, &ann, &pid, "vic@example.com", "viewer").await;
    let dev = join(&app, &ann, &pid, "dev@example.com", "developer").await;
    let admin = join(&app, &ann, &pid, "ada@example.com", "admin").await;
    let owner = join(&app, &ann, &pid, "oli@example.com", "owner").await;
    let before = members(&app, &ann, &pid).await;
    assert_eq!(before.len(), 5);

    for (who, role) in [
        (&viewer.token, "viewer"),
        (&dev.token, "viewer"),
        (&dev.token, "developer"),
        (&admin.token, "owner"),
    ] {
        let a = app
            .post(
                &members_path(&pid),
                Some(who),
                json!({"email": "new@example.com", "role": role}),
            )
            .await;
        a.assert_error(403, "forbidden");
        // Inviting someone who already exists is refused the same way.
        let a = app
            .post(
                &members_path(&pid),
                Some(who),
                json!({"email": "ann@example.com", "role": role}),
            )
            .await;
        a.assert_error(403, "forbidden");
    }
    assert_eq!(members(&app, &ann, &pid).await, before, "refused invites add no one");

    // An admin invites up to admin.
    for (email, role) in [
        ("v2@example.com", "viewer"),
        ("d2@example.com", "developer"),
        ("a2@example.com", "admin"),
    ] {
        let m = invite(&app, &admin.token, &pid, email, role).await;
        assert_eq!(m["role"], role);
        assert_eq!(m["status"], "invited");
    }
    // A project owner (a tenant member) may grant owner.
    let m = invite(&app, &owner.token, &pid, "o2@example.com", "owner").await;
    assert_eq!(m["role"], "owner");
    // And so may the tenant owner.
    let m = invite(&app, &ann, &pid, "o3@example.com", "owner").await;
    assert_eq!(m["role"], "owner");
    let after = members(&app, &ann, &pid).await;
    assert_eq!(after.len(), 10, "{after:?}");
    assert!(by_email(&after, "new@example.com").is_none());
}

async fn invite_existing_unknown_and_conflicting_emails(app: TestApp) {
    let (ann, _, ann_tenant) = app.register("ann@example.com").await;
    let (bob, _, _) = app.register("bob@example.com").await;
    let p1 = app.create_project(&ann, "P1").await;
    let p2 = app.create_project(&ann, "P2").await;
    let mia = join(&app, &ann, &p1, "mia@example.com", "viewer").await;
    app.get(&project_path(&p2), Some(&mia.token))
        .await
        .assert_error(404, "not_found");

    // An existing user of the same tenant joins at once, without a link (any casing).
    let a = app
        .post(
            &members_path(&p2),
            Some(&ann),
            json!({"email": "MIA@example.COM", "role": "developer"}),
        )
        .await;
    let m = a.assert_ok(201).clone();
    assert_keys(&m, &MEMBER_KEYS);
    assert_eq!(m["status"], "active");
    assert_eq!(m["userId"], json!(mia.user_id));
    assert_eq!(m["role"], "developer");
    assert_eq!(m["name"], "mia");
    assert_timestamp(&m["joinedAt"]);
    let p = get_project(&app, &mia.token, &p2).await;
    assert_eq!(p["myRole"], "developer");
    assert_eq!(p["tenantId"], json!(ann_tenant));

    // An unknown email gets an invite link.
    let a = app
        .post(
            &members_path(&p2),
            Some(&ann),
            json!({"email": "Newbie@Example.com", "role": "viewer"}),
        )
        .await;
    let n = a.assert_ok(201).clone();
    assert_keys(&n, &[&MEMBER_KEYS[..], &["inviteUrl"][..]].concat());
    assert_eq!(n["status"], "invited");
    assert_eq!(n["userId"], Value::Null);
    assert_eq!(n["joinedAt"], Value::Null);
    assert_eq!(n["email"], "Newbie@Example.com");
    let url = s(&n["inviteUrl"]);
    assert!(url.contains("/invites/accept?token="), "{url}");
    assert!(invite_token(url).len() >= 32, "{url}");

    // The longest valid address (254 characters) is fine.
    let longest = format!("{}@example.com", "a".repeat(254 - "@example.com".len()));
    assert_eq!(longest.chars().count(), 254);
    let m = invite(&app, &ann, &p2, &longest, "viewer").await;
    assert_eq!(m["email"], json!(longest));

    let before = members(&app, &ann, &p2).await;
    assert_eq!(before.len(), 4);

    // Conflicts: another tenant's user (including the platform admin), already a member.
    for email in [
        "bob@example.com",
        "BOB@EXAMPLE.COM",
        tokenone_testkit::ADMIN_EMAIL,
        "mia@example.com",
        "Mia@Example.Com",
        "ann@example.com",
        "ANN@example.com",
        "newbie@example.com",
        "NEWBIE@EXAMPLE.COM",
    ] {
        let a = app
            .post(
                &members_path(&p2),
                Some(&ann),
                json!({"email": email, "role": "viewer"}),
            )
            .await;
        a.assert_error(409, "conflict");
    }
    // Bob's account is untouched and his tenant sees nothing of it.
    assert!(list_projects(&app, &bob).await.is_empty());

    // Invalid bodies.
    for body in [
        json!({"email": "x@example.com", "role": "superuser"}),
        json!({"email": "x@example.com", "role": "Owner"}),
        json!({"email": "x@example.com", "role": ""}),
        json!({"email": "x@example.com", "role": 1}),
        json!({"email": "x@example.com"}),
        json!({"role": "viewer"}),
        json!({"email": "nope", "role": "viewer"}),
        json!({"email": "a@b", "role": "viewer"}),
        json!({"email": "a@@b.co", "role": "viewer"}),
        json!({"email": "a b@c.co", "role": "viewer"}),
        json!({"email": "", "role": "viewer"}),
        json!({"email": format!("{}@example.com", "a".repeat(250)), "role": "viewer"}),
        json!({"email": 5, "role": "viewer"}),
        json!({"email": "x@example.com", "role": "viewer", "status": "active"}),
        json!({"email": "x@example.com", "role": "viewer", "userId": mia.user_id}),
    ] {
        app.post(&members_path(&p2), Some(&ann), body.clone())
            .await
            .assert_error(400, "invalid_request");
    }
    assert_eq!(members(&app, &ann, &p2).await, before, "refused invites change nothing");
}

// ---------------------------------------------------------------------------------------------
// invite acceptance

async fn accept_invite_makes_a_tenant_member(app: TestApp) {
    let (ann, _, ann_tenant) = app.register("ann@example.com").await;
    let pid = app.create_project(&ann, "Apollo").await;
    let other = app.create_project(&ann, "Other").await;
    let inv = invite(&app, &ann, &pid, "Joe@Example.com", "developer").await;
    let url = s(&inv["inviteUrl"]).to_string();
    let token = invite_token(&url);

    // Bad attempts first: none of them spends the invite.
    for body in [
        json!({"token": token, "name": "Joe", "password": "short"}),
        json!({"token": token, "name": "", "password": "joiner-password-1"}),
        json!({"token": token, "name": "x".repeat(101), "password": "joiner-password-1"}),
        json!({"token": token, "name": "Joe"}),
        json!({"token": token, "name": "Joe", "password": "joiner-password-1", "tenantRole": "owner"}),
        json!({"token": token, "name": "Joe", "password": "joiner-password-1", "email": "x@example.com"}),
        json!({"token": 1, "name": "Joe", "password": "joiner-password-1"}),
    ] {
        app.post("/api/invites/accept", None, body.clone())
            .await
            .assert_error(400, "invalid_request");
    }
    let still = by_id(&members(&app, &ann, &pid).await, s(&inv["id"]))
        .expect("member")
        .clone();
    assert_eq!(still["status"], "invited");
    assert_eq!(still["userId"], Value::Null);

    app.post(
        "/api/invites/accept",
        None,
        json!({"token": "no-such-token", "name": "Joe", "password": "joiner-password-1"}),
    )
    .await
    .assert_error(404, "not_found");
    app.post(
        "/api/invites/accept",
        None,
        json!({"token": format!("{token}x"), "name": "Joe", "password": "joiner-password-1"}),
    )
    .await
    .assert_error(404, "not_found");

    // The real thing.
    let a = app
        .post(
            "/api/invites/accept",
            None,
            json!({"token": token, "name": "Joe Bloggs", "password": "joiner-password-1"}),
        )
        .await;
    let d = a.assert_ok(200).clone();
    let user = &d["user"];
    assert_eq!(user["tenantId"], json!(ann_tenant));
    assert_eq!(user["tenantRole"], "member");
    assert_eq!(user["platformAdmin"], json!(false));
    assert_eq!(user["email"], "Joe@Example.com");
    assert_eq!(user["name"], "Joe Bloggs");
    assert_uuid_v7(&user["id"]);
    let joe = s(&d["tokens"]["accessToken"]).to_string();
    assert!(!s(&d["tokens"]["refreshToken"]).is_empty());

    let me = app.get("/api/auth/me", Some(&joe)).await;
    let me = me.assert_ok(200);
    assert_eq!(me["user"]["id"], user["id"]);
    assert_eq!(me["user"]["tenantRole"], "member");

    let list = members(&app, &joe, &pid).await;
    let m = by_id(&list, s(&inv["id"])).expect("member");
    assert_eq!(m["status"], "active");
    assert_eq!(m["userId"], user["id"]);
    assert_eq!(m["name"], "Joe Bloggs");
    assert_eq!(m["role"], "developer");
    assert_eq!(m["invitedAt"], inv["invitedAt"]);
    assert_timestamp(&m["joinedAt"]);

    // Joe sees the project with the invited role, and nothing else of the tenant.
    assert_eq!(get_project(&app, &joe, &pid).await["myRole"], "developer");
    assert_eq!(ids(&list_projects(&app, &joe).await), vec![pid.clone()]);
    app.get(&project_path(&other), Some(&joe))
        .await
        .assert_error(404, "not_found");

    // The password works for login, with any casing of the email.
    app.login("joe@example.com", "joiner-password-1").await;

    // The token is spent.
    let again = app
        .post(
            "/api/invites/accept",
            None,
            json!({"token": token, "name": "Joe Again", "password": "joiner-password-2"}),
        )
        .await;
    again.assert_error(409, "conflict");
    app.post(
        "/api/auth/login",
        None,
        json!({"email": "joe@example.com", "password": "joiner-password-2"}),
    )
    .await
    .assert_error(401, "unauthenticated");
    let after = members(&app, &ann, &pid).await;
    assert_eq!(after.len(), 2);
    assert_eq!(by_id(&after, s(&inv["id"])).expect("member")["name"], "Joe Bloggs");
}

async fn concurrent_invites_and_accepts_do_not_double_up(app: TestApp) {
    let (ann, _, _) = app.register("ann@example.com").await;
    let pid = app.create_project(&ann, "Apollo").await;

    // The same email invited twice at once: one member.
    let body = json!({"email": "twin@example.com", "role": "viewer"});
    let path = members_path(&pid);
    let (a, b) = tokio::join!(
        app.post(&path, Some(&ann), body.clone()),
        app.post(&path, Some(&ann), body.clone()),
    );
    let mut statuses = vec![a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, vec![201, 409], "{} / {}", a.text, b.text);
    let loser = if a.status == 409 { &a } else { &b };
    loser.assert_error(409, "conflict");
    let winner = if a.status == 201 { &a } else { &b };
    let url = s(&winner.body["data"]["inviteUrl"]).to_string();
    let list = members(&app, &ann, &pid).await;
    assert_eq!(list.iter().filter(|m| m["email"] == "twin@example.com").count(), 1);

    // The same invite accepted twice at once: one account.
    let (a, b) = tokio::join!(accept(&app, &url, "Twin"), accept(&app, &url, "Twin"));
    let mut statuses = vec![a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 409], "{} / {}", a.text, b.text);
    let winner = if a.status == 200 { &a } else { &b };
    let user_id = winner.body["data"]["user"]["id"].clone();
    let list = members(&app, &ann, &pid).await;
    let m = by_email(&list, "twin@example.com").expect("member");
    assert_eq!(m["status"], "active");
    assert_eq!(m["userId"], user_id);
    app.login("twin@example.com", "joiner-password-1").await;
}

async fn accepting_one_invite_activates_the_others_of_the_tenant(app: TestApp) {
    let (ann, _, ann_tenant) = app.register("ann@example.com").await;
    let (bob, _, _) = app.register("bob@example.com").await;
    let p1 = app.create_project(&ann, "P1").await;
    let p2 = app.create_project(&ann, "P2").await;
    let q1 = app.create_project(&bob, "Q1").await;
    let i1 = invite(&app, &ann, &p1, "sam@example.com", "developer").await;
    let i2 = invite(&app, &ann, &p2, "Sam@Example.com", "admin").await;
    let iq = invite(&app, &bob, &q1, "sam@example.com", "viewer").await;

    let a = accept(&app, s(&i1["inviteUrl"]), "Sam").await;
    let d = a.assert_ok(200).clone();
    assert_eq!(d["user"]["tenantId"], json!(ann_tenant));
    let sam = s(&d["tokens"]["accessToken"]).to_string();

    // Sam is now a user of Ann's tenant, so the pending membership of P2 is his, as an invite of
    // an existing user of the tenant would have been: active, with its invited role.
    let m2 = by_id(&members(&app, &ann, &p2).await, s(&i2["id"]))
        .expect("member")
        .clone();
    assert_eq!(m2["status"], "active", "{m2}");
    assert_eq!(m2["userId"], d["user"]["id"]);
    assert_timestamp(&m2["joinedAt"]);
    assert_eq!(m2["role"], "admin");
    assert_eq!(get_project(&app, &sam, &p2).await["myRole"], "admin");
    assert_eq!(
        ids(&list_projects(&app, &sam).await),
        sorted(vec![p1.clone(), p2.clone()])
    );
    // Its link is spent.
    accept(&app, s(&i2["inviteUrl"]), "Sam")
        .await
        .assert_error(409, "conflict");

    // Bob's tenant is another organisation: its invite stays pending and cannot be accepted by
    // an email that now has an account elsewhere.
    let mq = by_id(&members(&app, &bob, &q1).await, s(&iq["id"]))
        .expect("member")
        .clone();
    assert_eq!(mq["status"], "invited");
    assert_eq!(mq["userId"], Value::Null);
    accept(&app, s(&iq["inviteUrl"]), "Sam")
        .await
        .assert_error(409, "conflict");
    app.get(&project_path(&q1), Some(&sam))
        .await
        .assert_error(404, "not_found");
}

// ---------------------------------------------------------------------------------------------
// role changes

async fn role_changes_follow_the_role_table(app: TestApp) {
    let (ann, _, _) = app.register("ann@example.com").await;
    let pid = app.create_project(&ann, "Apollo").await;
    let ann_member = s(&members(&app, &ann, &pid).await[0]["id"]).to_string();
    let admin = join(&app, &ann, &pid, "ada@example.com", "admin").await;
    let dev = join(&app, &ann, &pid, "dev@example.com", "developer").await;
    let viewer = join(&app, &ann, &pid, "vic@example.com", "viewer").await;
    let owner = join(&app, &ann, &pid, "oli@example.com", "owner").await;
    let target = join(&app, &ann, &pid, "tim@example.com", "developer").await;

    // Admin moves developer <-> viewer <-> admin.
    for role in ["viewer", "developer", "admin", "viewer", "admin", "developer"] {
        let a = set_role(&app, &admin.token, &pid, &target.member_id, role).await;
        let m = a.assert_ok(200).clone();
        assert_keys(&m, &MEMBER_KEYS);
        assert_eq!(m["id"], json!(target.member_id));
        assert_eq!(m["role"], role);
        assert_eq!(m["status"], "active");
        let list = members(&app, &ann, &pid).await;
        assert_eq!(by_id(&list, &target.member_id).unwrap()["role"], role);
        assert_eq!(get_project(&app, &target.token, &pid).await["myRole"], role);
    }
    // Setting the same role again is fine.
    let a = set_role(&app, &admin.token, &pid, &target.member_id, "developer").await;
    assert_eq!(a.assert_ok(200)["role"], "developer");

    let before = members(&app, &ann, &pid).await;
    // Admin may not promote to owner, nor touch an owner.
    set_role(&app, &admin.token, &pid, &target.member_id, "owner")
        .await
        .assert_error(403, "forbidden");
    set_role(&app, &admin.token, &pid, &owner.member_id, "admin")
        .await
        .assert_error(403, "forbidden");
    set_role(&app, &admin.token, &pid, &owner.member_id, "viewer")
        .await
        .assert_error(403, "forbidden");
    set_role(&app, &admin.token, &pid, &ann_member, "viewer")
        .await
        .assert_error(403, "forbidden");
    // Developers and viewers change nothing.
    for (who, mid, role) in [
        (&dev.token, &viewer.member_id, "developer"),
        (&dev.token, &dev.member_id, "admin"),
        (&viewer.token, &viewer.member_id, "admin"),
        (&viewer.token, &dev.member_id, "viewer"),
    ] {
        set_role(&app, who, &pid, mid, role)
            .await
            .assert_error(403, "forbidden");
    }
    // Bad bodies and unknown members.
    for body in [
        json!({"role": "root"}),
        json!({"role": "OWNER"}),
        json!({"role": null}),
        json!({}),
        json!({"role": "viewer", "status": "invited"}),
    ] {
        app.patch(&role_path(&pid, &target.member_id), Some(&ann), body)
            .await
            .assert_error(400, "invalid_request");
    }
    for mid in [NO_SUCH_ID, "not-a-uuid", pid.as_str()] {
        set_role(&app, &ann, &pid, mid, "viewer")
            .await
            .assert_error(404, "not_found");
    }
    assert_eq!(members(&app, &ann, &pid).await, before, "nothing changed");

    // An owner (tenant member) may promote to owner and demote an owner.
    let a = set_role(&app, &owner.token, &pid, &target.member_id, "owner").await;
    assert_eq!(a.assert_ok(200)["role"], "owner");
    assert_eq!(get_project(&app, &target.token, &pid).await["myRole"], "owner");
    let a = set_role(&app, &owner.token, &pid, &target.member_id, "viewer").await;
    assert_eq!(a.assert_ok(200)["role"], "viewer");
    let a = set_role(&app, &owner.token, &pid, &ann_member, "admin").await;
    assert_eq!(a.assert_ok(200)["role"], "admin");
    // The tenant owner still acts as owner on the project.
    assert_eq!(get_project(&app, &ann, &pid).await["myRole"], "owner");
    let a = set_role(&app, &ann, &pid, &ann_member, "owner").await;
    assert_eq!(a.assert_ok(200)["role"], "owner");

    // A member of another project is not found through this one.
    let other = app.create_project(&ann, "Other").await;
    let other_owner = s(&members(&app, &ann, &other).await[0]["id"]).to_string();
    set_role(&app, &ann, &pid, &other_owner, "viewer")
        .await
        .assert_error(404, "not_found");
    assert_eq!(members(&app, &ann, &other).await[0]["role"], "owner");
}

async fn last_owner_cannot_be_demoted_or_removed(app: TestApp) {
    let (ann, _, _) = app.register("ann@example.com").await;
    let pid = app.create_project(&ann, "Apollo").await;
    let ann_member = s(&members(&app, &ann, &pid).await[0]["id"]).to_string();

    for role in ["admin", "developer", "viewer"] {
        app.patch(&role_path(&pid, &ann_member), Some(&ann), json!({"role": role}))
            .await
            .assert_error(409, "conflict");
    }
    app.delete(&member_path(&pid, &ann_member), Some(&ann))
        .await
        .assert_error(409, "conflict");
    // An owner who has only been invited does not count.
    let pending = invite(&app, &ann, &pid, "pending-owner@example.com", "owner").await;
    app.patch(&role_path(&pid, &ann_member), Some(&ann), json!({"role": "admin"}))
        .await
        .assert_error(409, "conflict");
    app.delete(&member_path(&pid, &ann_member), Some(&ann))
        .await
        .assert_error(409, "conflict");
    let list = members(&app, &ann, &pid).await;
    assert_eq!(by_id(&list, &ann_member).unwrap()["role"], "owner");
    assert_eq!(active_owners(&list), 1);
    // The invited owner can be demoted or removed: the active owner remains.
    let a = app
        .patch(
            &role_path(&pid, s(&pending["id"])),
            Some(&ann),
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(a.assert_ok(200)["role"], "viewer");

    // With a second owner, one of them can step down.
    let oli = join(&app, &ann, &pid, "oli@example.com", "owner").await;
    let a = app
        .patch(&role_path(&pid, &ann_member), Some(&ann), json!({"role": "admin"}))
        .await;
    assert_eq!(a.assert_ok(200)["role"], "admin");
    // Now Oli is the last owner: he cannot step down, nor be removed.
    app.patch(
        &role_path(&pid, &oli.member_id),
        Some(&oli.token),
        json!({"role": "admin"}),
    )
    .await
    .assert_error(409, "conflict");
    app.delete(&member_path(&pid, &oli.member_id), Some(&ann))
        .await
        .assert_error(409, "conflict");
    let list = members(&app, &ann, &pid).await;
    assert_eq!(by_id(&list, &oli.member_id).unwrap()["role"], "owner");
    assert_eq!(by_id(&list, &oli.member_id).unwrap()["status"], "active");
    assert_eq!(active_owners(&list), 1);
    assert_eq!(get_project(&app, &oli.token, &pid).await["myRole"], "owner");

    // Two owners again: removing one works, the other remains.
    let a = app
        .patch(
            &role_path(&pid, &ann_member),
            Some(&oli.token),
            json!({"role": "owner"}),
        )
        .await;
    assert_eq!(a.assert_ok(200)["role"], "owner");
    let a = app.delete(&member_path(&pid, &oli.member_id), Some(&ann)).await;
    assert_eq!(a.assert_ok(200)["id"], json!(oli.member_id));
    let list = members(&app, &ann, &pid).await;
    assert_eq!(active_owners(&list), 1);
    assert_eq!(by_id(&list, &ann_member).unwrap()["role"], "owner");
}

/// Makes the joined user an active owner of `pid` again (re-adding them if they were removed);
/// `id` tracks their current member id.
async fn ensure_owner(app: &TestApp, admin: &str, pid: &str, who: &Joined, id: &mut String) {
    let list = members(app, admin, pid).await;
    match by_id(&list, id) {
        Some(m) if m["role"] == "owner" => {}
        Some(_) => {
            let a = set_role(app, admin, pid, id, "owner").await;
            assert_eq!(a.assert_ok(200)["role"], "owner");
        }
        None => {
            let a = app
                .post(
                    &members_path(pid),
                    Some(admin),
                    json!({"email": who.email, "role": "owner"}),
                )
                .await;
            let m = a.assert_ok(201);
            assert_eq!(m["status"], "active");
            assert_eq!(m["userId"], json!(who.user_id));
            *id = s(&m["id"]).to_string();
        }
    }
}

async fn concurrent_owner_demotions_keep_an_owner(app: TestApp) {
    let (ann, _, _) = app.register("ann@example.com").await;
    let pid = app.create_project(&ann, "Apollo").await;
    let ann_member = s(&members(&app, &ann, &pid).await[0]["id"]).to_string();
    let x = join(&app, &ann, &pid, "xav@example.com", "owner").await;
    let y = join(&app, &ann, &pid, "yan@example.com", "owner").await;
    // Ann (tenant owner, so owner on every project anyway) steps down as a member, so X and Y
    // are the only owners.
    set_role(&app, &ann, &pid, &ann_member, "viewer").await.assert_ok(200);
    let (mut x_id, mut y_id) = (x.member_id.clone(), y.member_id.clone());

    for round in 0..6 {
        ensure_owner(&app, &ann, &pid, &x, &mut x_id).await;
        ensure_owner(&app, &ann, &pid, &y, &mut y_id).await;
        let list = members(&app, &ann, &pid).await;
        assert_eq!(active_owners(&list), 2, "round {round}: {list:?}");

        // Each owner goes for the other at the same moment.
        let (x_mpath, y_mpath) = (member_path(&pid, &x_id), member_path(&pid, &y_id));
        let (a, b) = match round % 3 {
            0 => tokio::join!(
                set_role(&app, &x.token, &pid, &y_id, "admin"),
                set_role(&app, &y.token, &pid, &x_id, "admin"),
            ),
            1 => tokio::join!(
                app.delete(&y_mpath, Some(&x.token)),
                app.delete(&x_mpath, Some(&y.token)),
            ),
            _ => tokio::join!(
                set_role(&app, &x.token, &pid, &y_id, "viewer"),
                app.delete(&x_mpath, Some(&y.token)),
            ),
        };
        // The loser is refused: 409 (last owner), or 403/404 when the winner's change landed
        // before the loser's request was authorised.
        for r in [&a, &b] {
            match r.status.as_u16() {
                200 => {}
                409 => r.assert_error(409, "conflict"),
                403 => r.assert_error(403, "forbidden"),
                404 => r.assert_error(404, "not_found"),
                other => panic!("round {round}: unexpected {other}: {}", r.text),
            }
        }
        let successes = [&a, &b].iter().filter(|r| r.status == 200).count();
        assert!(successes <= 1, "round {round}: both succeeded: {} / {}", a.text, b.text);

        let list = members(&app, &ann, &pid).await;
        let owners = active_owners(&list);
        assert!(owners >= 1, "round {round}: no owner left: {list:?}");
        assert_eq!(
            owners,
            2 - successes,
            "round {round}: the answers match the outcome: {list:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// removal

async fn remove_member_rules(app: TestApp) {
    let (ann, _, _) = app.register("ann@example.com").await;
    let pid = app.create_project(&ann, "Apollo").await;
    let ann_member = s(&members(&app, &ann, &pid).await[0]["id"]).to_string();
    let admin = join(&app, &ann, &pid, "ada@example.com", "admin").await;
    let dev = join(&app, &ann, &pid, "dev@example.com", "developer").await;
    let viewer = join(&app, &ann, &pid, "vic@example.com", "viewer").await;
    let owner = join(&app, &ann, &pid, "oli@example.com", "owner").await;
    let before = members(&app, &ann, &pid).await;

    // Viewers and developers may not remove anyone; admins may not remove owners.
    for (who, mid) in [
        (&viewer.token, &dev.member_id),
        (&viewer.token, &viewer.member_id),
        (&dev.token, &viewer.member_id),
        (&dev.token, &dev.member_id),
        (&admin.token, &owner.member_id),
        (&admin.token, &ann_member),
    ] {
        app.delete(&member_path(&pid, mid), Some(who))
            .await
            .assert_error(403, "forbidden");
    }
    for mid in [NO_SUCH_ID, "not-a-uuid"] {
        app.delete(&member_path(&pid, mid), Some(&ann))
            .await
            .assert_error(404, "not_found");
    }
    assert_eq!(members(&app, &ann, &pid).await, before, "nothing removed");

    // An admin removes a developer; the answer is the member as it was.
    let dev_before = by_id(&before, &dev.member_id).unwrap().clone();
    let a = app.delete(&member_path(&pid, &dev.member_id), Some(&admin.token)).await;
    assert_eq!(a.assert_ok(200), &dev_before);
    let after = members(&app, &ann, &pid).await;
    assert_eq!(after.len(), before.len() - 1);
    assert!(by_id(&after, &dev.member_id).is_none());
    // The removed user no longer sees the project.
    app.get(&project_path(&pid), Some(&dev.token))
        .await
        .assert_error(404, "not_found");
    app.get(&members_path(&pid), Some(&dev.token))
        .await
        .assert_error(404, "not_found");
    app.patch(&project_path(&pid), Some(&dev.token), json!({"name": "X"}))
        .await
        .assert_error(404, "not_found");
    assert!(list_projects(&app, &dev.token).await.is_empty());
    // Removing again: not found.
    app.delete(&member_path(&pid, &dev.member_id), Some(&admin.token))
        .await
        .assert_error(404, "not_found");

    // Removing an invited member withdraws the invite.
    let pending = invite(&app, &admin.token, &pid, "late@example.com", "viewer").await;
    let a = app
        .delete(&member_path(&pid, s(&pending["id"])), Some(&admin.token))
        .await;
    assert_eq!(a.assert_ok(200)["status"], "invited");
    accept(&app, s(&pending["inviteUrl"]), "Late")
        .await
        .assert_error(404, "not_found");

    // An owner removes an owner; an admin removes an admin (even themselves).
    let a = app.delete(&member_path(&pid, &owner.member_id), Some(&ann)).await;
    assert_eq!(a.assert_ok(200)["role"], "owner");
    let a = app
        .delete(&member_path(&pid, &admin.member_id), Some(&admin.token))
        .await;
    assert_eq!(a.assert_ok(200)["role"], "admin");
    app.get(&project_path(&pid), Some(&admin.token))
        .await
        .assert_error(404, "not_found");

    // The last owner stays.
    app.delete(&member_path(&pid, &ann_member), Some(&ann))
        .await
        .assert_error(409, "conflict");
    let list = members(&app, &ann, &pid).await;
    assert_eq!(ids(&list), sorted(vec![ann_member.clone(), viewer.member_id.clone()]));

    // A removed user can be added back, as an existing user of the tenant.
    let a = app
        .post(
            &members_path(&pid),
            Some(&ann),
            json!({"email": dev.email, "role": "viewer"}),
        )
        .await;
    let back = a.assert_ok(201);
    assert_eq!(back["status"], "active");
    assert_eq!(back["userId"], json!(dev.user_id));
    assert_eq!(get_project(&app, &dev.token, &pid).await["myRole"], "viewer");
}

// ---------------------------------------------------------------------------------------------
// 404, never 403, across tenants and for non-members

async fn member_routes_hide_foreign_projects(app: TestApp) {
    let (ann, _, _) = app.register("ann@example.com").await;
    let (bob, _, _) = app.register("bob@example.com").await;
    let pid = app.create_project(&ann, "Apollo").await;
    let other = app.create_project(&ann, "Other").await;
    let dev = join(&app, &ann, &pid, "dev@example.com", "developer").await;
    // Mia belongs to `other` only: a same-tenant non-member of `pid`.
    let mia = join(&app, &ann, &other, "mia@example.com", "admin").await;
    let ann_member = s(&members(&app, &ann, &pid).await[0]["id"]).to_string();
    let before = members(&app, &ann, &pid).await;
    let bob_pid = app.create_project(&bob, "Bobs").await;

    for token in [&bob, &mia.token] {
        app.get(&members_path(&pid), Some(token))
            .await
            .assert_error(404, "not_found");
        for role in ["viewer", "owner"] {
            app.post(
                &members_path(&pid),
                Some(token),
                json!({"email": "spy@example.com", "role": role}),
            )
            .await
            .assert_error(404, "not_found");
        }
        // Even a malformed body does not reveal the project.
        app.post(&members_path(&pid), Some(token), json!({"bogus": true}))
            .await
            .assert_error(404, "not_found");
        for mid in [&dev.member_id, &ann_member] {
            for role in ["viewer", "owner"] {
                app.patch(&role_path(&pid, mid), Some(token), json!({"role": role}))
                    .await
                    .assert_error(404, "not_found");
            }
            app.delete(&member_path(&pid, mid), Some(token))
                .await
                .assert_error(404, "not_found");
        }
        app.patch(&role_path(&pid, NO_SUCH_ID), Some(token), json!({"role": "viewer"}))
            .await
            .assert_error(404, "not_found");
        app.delete(&member_path(&pid, NO_SUCH_ID), Some(token))
            .await
            .assert_error(404, "not_found");
    }
    // Ann cannot reach Bob's project through its members either.
    app.get(&members_path(&bob_pid), Some(&ann))
        .await
        .assert_error(404, "not_found");
    app.post(
        &members_path(&bob_pid),
        Some(&ann),
        json!({"email": "dev@example.com", "role": "admin"}),
    )
    .await
    .assert_error(404, "not_found");
    // Nor with a project id that is not a UUID or names nothing.
    for bad in ["not-a-uuid", NO_SUCH_ID] {
        app.get(&members_path(bad), Some(&ann))
            .await
            .assert_error(404, "not_found");
        app.post(
            &members_path(bad),
            Some(&ann),
            json!({"email": "x@example.com", "role": "viewer"}),
        )
        .await
        .assert_error(404, "not_found");
        app.patch(&role_path(bad, &dev.member_id), Some(&ann), json!({"role": "viewer"}))
            .await
            .assert_error(404, "not_found");
        app.delete(&member_path(bad, &dev.member_id), Some(&ann))
            .await
            .assert_error(404, "not_found");
    }
    // Using Ann's real member id through Bob's project does not reach it.
    app.patch(
        &role_path(&bob_pid, &dev.member_id),
        Some(&bob),
        json!({"role": "viewer"}),
    )
    .await
    .assert_error(404, "not_found");
    app.delete(&member_path(&bob_pid, &dev.member_id), Some(&bob))
        .await
        .assert_error(404, "not_found");

    // Anonymous callers are 401 on each route.
    app.get(&members_path(&pid), None)
        .await
        .assert_error(401, "unauthenticated");
    app.post(
        &members_path(&pid),
        None,
        json!({"email": "x@example.com", "role": "viewer"}),
    )
    .await
    .assert_error(401, "unauthenticated");
    app.patch(&role_path(&pid, &dev.member_id), None, json!({"role": "viewer"}))
        .await
        .assert_error(401, "unauthenticated");
    app.delete(&member_path(&pid, &dev.member_id), None)
        .await
        .assert_error(401, "unauthenticated");

    assert_eq!(members(&app, &ann, &pid).await, before, "nothing changed");
    assert!(by_email(&members(&app, &bob, &bob_pid).await, "dev@example.com").is_none());
}

both_backends!(
    create_returns_the_project_and_makes_the_creator_owner,
    create_validates_name_description_and_tags,
    create_rejects_unknown_fields_wrong_types_and_anonymous_callers,
    list_shows_only_the_callers_visible_projects,
    hidden_projects_are_404_for_get_and_patch,
    patch_needs_developer_and_updates_fields,
    patch_validation_errors_change_nothing,
    member_list_shape_and_who_may_read_it,
    invite_needs_admin_and_owner_for_owner,
    invite_existing_unknown_and_conflicting_emails,
    accept_invite_makes_a_tenant_member,
    concurrent_invites_and_accepts_do_not_double_up,
    accepting_one_invite_activates_the_others_of_the_tenant,
    role_changes_follow_the_role_table,
    last_owner_cannot_be_demoted_or_removed,
    concurrent_owner_demotions_keep_an_owner,
    remove_member_rules,
    member_routes_hide_foreign_projects,
);
