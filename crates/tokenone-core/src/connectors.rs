//! Connectors (connectors.md): the built-in provider catalogue, the values of the OAuth flow
//! (state, PKCE), and every check a database connection string passes before anything connects to
//! it — scheme, parameters that would read local files or sockets, and the addresses its host
//! resolves to.

use crate::ids::{ProjectId, TenantId, UserId};
use crate::secret::Secret;
use crate::time::Millis;
use crate::{Error, Result};
use async_trait::async_trait;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// A built-in connector type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    pub ty: &'static str,
    pub name: &'static str,
    /// `git`, `issue`, `docs`, `chat` or `database`.
    pub category: &'static str,
    /// `oauth2` or `connection_string`.
    pub auth: &'static str,
}

impl Provider {
    pub fn is_oauth(&self) -> bool {
        self.auth == "oauth2"
    }
}

const fn p(ty: &'static str, name: &'static str, category: &'static str, auth: &'static str) -> Provider {
    Provider {
        ty,
        name,
        category,
        auth,
    }
}

/// Every built-in provider, in catalogue order.
pub const PROVIDERS: &[Provider] = &[
    p("github", "GitHub", "git", "oauth2"),
    p("gitlab", "GitLab", "git", "oauth2"),
    p("bitbucket", "Bitbucket", "git", "oauth2"),
    p("jira", "Jira", "issue", "oauth2"),
    p("linear", "Linear", "issue", "oauth2"),
    p("notion", "Notion", "docs", "oauth2"),
    p("confluence", "Confluence", "docs", "oauth2"),
    p("google-drive", "Google Drive", "docs", "oauth2"),
    p("slack", "Slack", "chat", "oauth2"),
    p("postgres", "PostgreSQL", "database", "connection_string"),
    p("mysql", "MySQL", "database", "connection_string"),
];

pub fn provider(ty: &str) -> Option<&'static Provider> {
    PROVIDERS.iter().find(|p| p.ty == ty)
}

/// A stored connector's metadata (never its credential).
#[derive(Debug, Clone)]
pub struct ConnectorRecord {
    pub id: uuid::Uuid,
    pub tenant_id: TenantId,
    pub project_id: ProjectId,
    pub ty: String,
    pub category: String,
    pub name: String,
    /// A secret-free description, e.g. `postgres://app@db.example.com:5432/sales`.
    pub display: String,
    /// `active` or `revoked`.
    pub status: String,
    pub scopes: Vec<String>,
    pub created_at: Millis,
    pub created_by: Option<UserId>,
    pub last_used_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

/// A pending OAuth round trip, keyed by the SHA-256 of its `state`.
#[derive(Debug, Clone)]
pub struct OAuthState {
    pub state_hash: String,
    pub provider: String,
    pub tenant_id: TenantId,
    pub project_id: ProjectId,
    pub user_id: UserId,
    /// The PKCE verifier, sealed with [`oauth_state_aad`].
    pub sealed_verifier: Vec<u8>,
    pub created_at: Millis,
    pub expires_at: Millis,
}

/// Associated data of a connector's sealed credential: it opens only in its own row.
pub fn connector_aad(tenant: TenantId, project: ProjectId, id: uuid::Uuid) -> Vec<u8> {
    format!("connector|{tenant}|{project}|{id}").into_bytes()
}

/// Associated data of a pending state's sealed verifier: it opens only for the user, project and
/// provider it was issued to.
pub fn oauth_state_aad(s: &OAuthState) -> Vec<u8> {
    format!(
        "oauth-state|{}|{}|{}|{}|{}",
        s.state_hash, s.tenant_id, s.project_id, s.user_id, s.provider
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------------------------
// OAuth values

/// `n` random bytes as unpadded base64url (`state`: 32 bytes = 256 bits; PKCE verifier: 32 bytes
/// = 43 characters, within RFC 7636's 43..=128).
pub fn random_urlsafe(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The S256 code challenge of a PKCE verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// How a state is stored: only its hash, so a database read does not yield usable states.
pub fn state_hash(state: &str) -> String {
    crate::tokens::sha256_hex(state)
}

/// The provider's authorisation URL with the query of connectors.md (existing query parameters
/// of the configured URL are kept).
pub fn authorize_url(
    base: &str,
    client_id: &str,
    redirect_uri: &str,
    scope: &str,
    state: &str,
    challenge: &str,
) -> Result<String> {
    let mut url = url::Url::parse(base)
        .map_err(|_| Error::internal(anyhow::anyhow!("the configured authorize_url is not a URL")))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", scope)
        .append_pair("state", state)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(url.into())
}

/// An error code a provider sent back, made safe to put in a URL and a message.
pub fn safe_error_code(raw: &str) -> String {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        raw.to_string()
    } else {
        "provider_error".to_string()
    }
}

/// A token endpoint's answer, checked.
#[derive(Clone)]
pub struct TokenAnswer {
    /// The whole answer (access token, refresh token, ...): sealed as it is.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// The scopes granted, when the answer says.
    pub scopes: Option<Vec<String>>,
}

/// What a token endpoint answered, checked: a JSON (or form-encoded) object with a non-empty
/// `access_token` and no `error`.
pub fn parse_token_response(body: &[u8]) -> Option<TokenAnswer> {
    use serde_json::Value;
    let obj = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return None,
        Err(_) => {
            let text = std::str::from_utf8(body).ok()?;
            let m: serde_json::Map<String, Value> = url::form_urlencoded::parse(text.trim().as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect();
            if m.is_empty() {
                return None;
            }
            m
        }
    };
    if obj.contains_key("error") || obj.get("ok") == Some(&Value::Bool(false)) {
        return None;
    }
    match obj.get("access_token") {
        Some(Value::String(t)) if !t.is_empty() => {}
        _ => return None,
    }
    let scopes = obj.get("scope").and_then(Value::as_str).map(|s| {
        s.split([' ', ','])
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    });
    Some(TokenAnswer { fields: obj, scopes })
}

/// Exchanges an authorisation code: the server implements it over HTTP.
#[async_trait]
pub trait TokenExchange: Send + Sync {
    /// POSTs `form` (URL-encoded) to `token_url` with a timeout; the body of a 2xx answer, or
    /// `None` for anything else (never with details: they may echo secrets).
    async fn exchange(&self, token_url: &str, form: &[(&str, &str)]) -> Option<Vec<u8>>;
}

// ---------------------------------------------------------------------------------------------
// Database connection strings

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Postgres,
    Mysql,
}

impl DbKind {
    pub fn connector_type(self) -> &'static str {
        match self {
            DbKind::Postgres => "postgres",
            DbKind::Mysql => "mysql",
        }
    }
    fn default_port(self) -> u16 {
        match self {
            DbKind::Postgres => 5432,
            DbKind::Mysql => 3306,
        }
    }
}

/// The host part of a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbHost {
    Ip(IpAddr),
    /// A DNS name, lower-cased, without a trailing dot.
    Name(String),
}

/// A connection string taken apart. `Debug` never shows the password.
#[derive(Debug, Clone)]
pub struct ConnString {
    pub kind: DbKind,
    pub scheme: String,
    pub user: String,
    pub password: Secret,
    pub host: DbHost,
    /// The host as written (IPv6 in brackets), for display.
    pub host_text: String,
    pub port: u16,
    pub database: String,
    /// `sslmode` (PostgreSQL) or `ssl-mode` (MySQL), if given.
    pub ssl_mode: Option<String>,
}

impl ConnString {
    /// The display form: no password, no parameters — `postgres://app@db.example.com:5432/sales`.
    pub fn display(&self) -> String {
        let user = percent_encoding::utf8_percent_encode(&self.user, USERINFO).to_string();
        let db = percent_encoding::utf8_percent_encode(&self.database, USERINFO).to_string();
        format!("{}://{}@{}:{}/{}", self.scheme, user, self.host_text, self.port, db)
    }
}

const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Parameter names (lower-cased, without `-`, `_` and `.`) that make a client read local files
/// or reach local sockets, or that would move the connection to another host than the one
/// checked: refused whatever their value.
const REFUSED_PARAMS: &[&str] = &[
    // PostgreSQL / libpq
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "sslcrldir",
    "passfile",
    "service",
    "servicefile",
    "host",
    "hostaddr",
    "requirepeer",
    "sslkeylogfile",
    // MySQL / MariaDB drivers
    "localinfile",
    "allowlocalinfile",
    "allowloadlocalinfile",
    "allowloadlocalinfileinpath",
    "socket",
    "unixsocket",
    "socketpath",
    "pipe",
    "namedpipe",
    "sharedmemorybasename",
    "sslca",
    "sslcapath",
    "sslcrlpath",
    "sslcertfile",
    "sslkeyfile",
    "serverrsapublickeyfile",
    "serverpublickey",
    "pluginsdir",
    "pluginpath",
    "readdefaultfile",
    "defaultsfile",
    "defaultsextrafile",
];

fn normalise_param(k: &str) -> String {
    k.chars()
        .filter(|c| !matches!(c, '-' | '_' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// A value that names something on the server's own disk.
fn looks_like_local_path(v: &str) -> bool {
    let v = v.trim();
    v.starts_with('/')
        || v.starts_with('~')
        || v.starts_with('\\')
        || v.starts_with("./")
        || v.starts_with("../")
        || v.to_ascii_lowercase().starts_with("file:")
        || (v.len() > 2 && v.as_bytes()[1] == b':' && v.as_bytes()[0].is_ascii_alphabetic())
}

fn refused(msg: impl std::fmt::Display) -> Error {
    Error::InvalidCode {
        code: "connector_refused",
        message: msg.to_string(),
    }
}

fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(40).collect()
}

/// Takes a connection string apart and refuses, before any connection, what connectors.md
/// refuses: other schemes, parameters that read local files or sockets, socket hosts. Host
/// addresses are checked by [`resolve_allowed`].
pub fn parse_connection_string(s: &str) -> Result<ConnString> {
    if s.is_empty() || s.len() > 4096 {
        return Err(Error::invalid("`connectionString` must be 1 to 4096 characters"));
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::invalid(
            "`connectionString` must not contain spaces or control characters",
        ));
    }
    let scheme = s
        .split_once("://")
        .map(|(a, _)| a.to_ascii_lowercase())
        .unwrap_or_default();
    let kind = match scheme.as_str() {
        "postgres" | "postgresql" => DbKind::Postgres,
        "mysql" | "mariadb" => DbKind::Mysql,
        _ => {
            return Err(Error::invalid(
                "`connectionString` must start with postgres://, postgresql://, mysql:// or mariadb://",
            ))
        }
    };
    // No host (`postgres://u@/db`) means the client's default local socket.
    let authority = s[scheme.len() + 3..].split(['/', '?', '#']).next().unwrap_or("");
    let host_part = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_part.is_empty() || host_part.starts_with(':') {
        return Err(refused(
            "`connectionString` has no host: a local socket is not accepted, name a network host",
        ));
    }
    let shape = "`connectionString` must look like scheme://user:password@host:port/database";
    let url = url::Url::parse(s).map_err(|_| Error::invalid(shape))?;
    if url.cannot_be_a_base() {
        return Err(Error::invalid(shape));
    }
    let mut ssl_mode = None;
    for (k, v) in url.query_pairs() {
        let nk = normalise_param(&k);
        if nk == "host" || nk == "hostaddr" {
            return Err(refused(if looks_like_local_path(&v) {
                "`host=/...` names a local socket; connectors reach databases over the network only"
            } else {
                "`host` and `hostaddr` parameters are not accepted; put the host in the URL"
            }));
        }
        if REFUSED_PARAMS.contains(&nk.as_str()) {
            return Err(refused(format!(
                "parameter `{}` reads local files or sockets and is not accepted",
                clip(&k)
            )));
        }
        if looks_like_local_path(&v) {
            return Err(refused(format!(
                "parameter `{}` names a local path, which is not accepted",
                clip(&k)
            )));
        }
        if nk == "sslmode" {
            ssl_mode = Some(v.to_ascii_lowercase());
        }
    }
    let decode = |x: &str| percent_encoding::percent_decode_str(x).decode_utf8_lossy().into_owned();
    let user = decode(url.username());
    if user.is_empty() {
        return Err(Error::invalid(
            "`connectionString` must name a user (scheme://user@host/...)",
        ));
    }
    let password = Secret::new(url.password().map(decode).unwrap_or_default());
    let (host, host_text) = match url.host() {
        None => {
            return Err(refused(
                "`connectionString` has no host: a local socket is not accepted, name a network host",
            ))
        }
        Some(url::Host::Ipv4(a)) => (DbHost::Ip(IpAddr::V4(a)), a.to_string()),
        Some(url::Host::Ipv6(a)) => (DbHost::Ip(IpAddr::V6(a)), format!("[{a}]")),
        Some(url::Host::Domain(d)) => {
            let raw = decode(d);
            (parse_host(&raw)?, raw.to_ascii_lowercase())
        }
    };
    let port = url.port().unwrap_or(kind.default_port());
    if port == 0 {
        return Err(Error::invalid("the port must be 1 to 65535"));
    }
    let path = url.path().strip_prefix('/').unwrap_or(url.path());
    let database = decode(path);
    if database.contains('/') {
        return Err(Error::invalid("the database name must not contain `/`"));
    }
    Ok(ConnString {
        kind,
        scheme,
        user,
        password,
        host,
        host_text,
        port,
        database,
        ssl_mode,
    })
}

/// A host name or an IPv4 address in any of the forms resolvers accept (`127.1`, `2130706433`,
/// `0x7f000001`, `0177.0.0.1`).
fn parse_host(raw: &str) -> Result<DbHost> {
    if raw.is_empty() || raw.starts_with('/') || raw.starts_with('@') || raw.contains(['/', '\\']) {
        return Err(refused(
            "the host names a local socket; connectors reach databases over the network only",
        ));
    }
    let name = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    if let Some(last) = name.rsplit('.').next() {
        let numeric = !last.is_empty()
            && (last.bytes().all(|b| b.is_ascii_digit())
                || ((last.starts_with("0x") || last.starts_with("0X"))
                    && last[2..].bytes().all(|b| b.is_ascii_hexdigit())));
        if numeric {
            return parse_ipv4_loose(&name)
                .map(|a| DbHost::Ip(IpAddr::V4(a)))
                .ok_or_else(|| Error::invalid("the host is not a valid address"));
        }
    }
    let valid = name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(Error::invalid("the host is not a valid host name"));
    }
    Ok(DbHost::Name(name))
}

fn parse_ipv4_part(p: &str) -> Option<u64> {
    let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        (h, 16)
    } else if p.len() > 1 && p.starts_with('0') {
        (&p[1..], 8)
    } else {
        (p, 10)
    };
    if digits.is_empty() {
        return (radix == 16).then_some(0);
    }
    if digits.len() > 12 {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// IPv4 in the forms of `inet_aton`: one to four parts, each decimal, hex (`0x`) or octal (`0`).
pub fn parse_ipv4_loose(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let nums: Vec<u64> = parts.iter().map(|p| parse_ipv4_part(p)).collect::<Option<_>>()?;
    let (head, last) = nums.split_at(nums.len() - 1);
    if head.iter().any(|&n| n > 255) {
        return None;
    }
    let last_bits = 8 * (4 - head.len() as u32);
    if last[0] >= (1u64 << last_bits) {
        return None;
    }
    let mut v: u64 = 0;
    for (i, n) in head.iter().enumerate() {
        v |= n << (24 - 8 * i as u32);
    }
    v |= last[0];
    Some(Ipv4Addr::from(v as u32))
}

/// Where an address may be reached from a connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrClass {
    /// A public unicast address.
    Public,
    /// Loopback, private (RFC 1918, ULA, CGNAT), link-local and other local ranges: refused
    /// unless `connectors.allow_private_networks`.
    Private,
    /// Never a database: unspecified, multicast, broadcast/reserved, cloud metadata.
    Forbidden,
}

fn in_v4(a: Ipv4Addr, net: [u8; 4], len: u32) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    (u32::from(a) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn classify_v4(a: Ipv4Addr) -> AddrClass {
    const METADATA: [[u8; 4]; 2] = [[169, 254, 169, 254], [100, 100, 100, 200]];
    if METADATA.contains(&a.octets())
        || in_v4(a, [0, 0, 0, 0], 8)
        || in_v4(a, [224, 0, 0, 0], 4)
        || in_v4(a, [240, 0, 0, 0], 4)
    {
        return AddrClass::Forbidden;
    }
    let private: &[([u8; 4], u32)] = &[
        ([127, 0, 0, 0], 8),
        ([10, 0, 0, 0], 8),
        ([172, 16, 0, 0], 12),
        ([192, 168, 0, 0], 16),
        ([169, 254, 0, 0], 16),
        ([100, 64, 0, 0], 10),
        ([192, 0, 0, 0], 24),
        ([192, 0, 2, 0], 24),
        ([198, 18, 0, 0], 15),
        ([198, 51, 100, 0], 24),
        ([203, 0, 113, 0], 24),
    ];
    if private.iter().any(|(n, l)| in_v4(a, *n, *l)) {
        AddrClass::Private
    } else {
        AddrClass::Public
    }
}

/// The IPv4 address an IPv6 address carries, for the forms that route to it: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4
/// (`2002::/16`).
fn embedded_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = a.segments();
    let o = a.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if s[..5] == [0, 0, 0, 0, 0] && (s[5] == 0xffff || s[5] == 0) {
        return Some(tail);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

pub fn classify(ip: IpAddr) -> AddrClass {
    match ip {
        IpAddr::V4(a) => classify_v4(a),
        IpAddr::V6(a) => {
            let s = a.segments();
            if a.is_unspecified()
                || s[0] & 0xff00 == 0xff00
                || a == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
                || s[..4] == [0x100, 0, 0, 0]
            {
                return AddrClass::Forbidden;
            }
            if a.is_loopback()
                || s[0] & 0xffc0 == 0xfe80
                || s[0] & 0xfe00 == 0xfc00
                || s[0] & 0xffc0 == 0xfec0
                || s[..2] == [0x2001, 0xdb8]
            {
                return AddrClass::Private;
            }
            match embedded_v4(a) {
                Some(v4) => classify_v4(v4),
                None => AddrClass::Public,
            }
        }
    }
}

fn check_addr(ip: IpAddr, allow_private: bool) -> Result<()> {
    match classify(ip) {
        AddrClass::Public => Ok(()),
        AddrClass::Private if allow_private => Ok(()),
        AddrClass::Private => Err(refused(
            "the host is or resolves to a loopback, private or link-local address, which connectors may not reach",
        )),
        AddrClass::Forbidden => Err(refused(
            "the host is or resolves to an unspecified, multicast, broadcast or cloud-metadata address",
        )),
    }
}

/// The addresses a connection may use: the host's, every one of them checked (a DNS name is
/// resolved and refused if any address it resolves to is refused).
pub async fn resolve_allowed(host: &DbHost, port: u16, allow_private: bool) -> Result<Vec<SocketAddr>> {
    match host {
        DbHost::Ip(ip) => {
            check_addr(*ip, allow_private)?;
            Ok(vec![SocketAddr::new(*ip, port)])
        }
        DbHost::Name(name) => {
            if (name == "localhost" || name.ends_with(".localhost")) && !allow_private {
                return Err(refused(
                    "the host is or resolves to a loopback, private or link-local address, which connectors may not reach",
                ));
            }
            let found = tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((name.as_str(), port)))
                .await
                .ok()
                .and_then(|r| r.ok())
                .map(|it| it.collect::<Vec<_>>())
                .unwrap_or_default();
            if found.is_empty() {
                return Err(Error::invalid("the host does not resolve"));
            }
            for a in &found {
                check_addr(a.ip(), allow_private)?;
            }
            Ok(found)
        }
    }
}

/// Where a connection test goes: the checked address (so a DNS answer that changes between the
/// check and the connection cannot move it), with the name kept for TLS verification.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    pub kind: DbKind,
    /// The address (or, for `verify-full` TLS, the checked name) to connect to.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    pub database: String,
    pub ssl_mode: Option<String>,
}

/// Tests a database connection (connect within 5 s, `SELECT 1`); the store implements it.
#[async_trait]
pub trait DatabaseProbe: Send + Sync {
    /// `true` when the database answered `SELECT 1`; no details either way (they would turn the
    /// endpoint into a port scanner or leak a server banner).
    async fn probe(&self, target: &ProbeTarget) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_code(s: &str) -> Option<&'static str> {
        match parse_connection_string(s) {
            Ok(_) => None,
            Err(Error::InvalidCode { code, .. }) => Some(code),
            Err(Error::Invalid(_)) => Some("invalid_request"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn display_hides_the_password() {
        let c = parse_connection_string("postgres://app:s3cr%40t@DB.example.com/sales?sslmode=require").unwrap();
        assert_eq!(c.display(), "postgres://app@db.example.com:5432/sales");
        assert_eq!(c.password.expose(), "s3cr@t");
        assert_eq!(c.ssl_mode.as_deref(), Some("require"));
        assert!(!format!("{c:?}").contains("s3cr"));
        let m = parse_connection_string("mariadb://root:pw@[2001:db8::1]:3307/app").unwrap();
        assert_eq!(m.kind, DbKind::Mysql);
        assert_eq!(m.display(), "mariadb://root@[2001:db8::1]:3307/app");
    }

    #[test]
    fn refuses_schemes_files_and_sockets() {
        for s in [
            "http://u@h/db",
            "sqlite:///etc/passwd",
            "jdbc:postgresql://h/db",
            "postgres:/h/db",
            "postgres://:pw@h/db",
        ] {
            assert_eq!(refused_code(s), Some("invalid_request"), "{s}");
        }
        for s in [
            "postgres://u@h/db?sslrootcert=/etc/passwd",
            "postgres://u@h/db?sslcert=x",
            "postgres://u@h/db?sslkey=x",
            "postgres://u@h/db?sslcrl=x",
            "postgres://u@h/db?passfile=x",
            "postgres://u@h/db?service=x",
            "postgres://u@h/db?host=/var/run/postgresql",
            "postgres://u@h/db?host=10.0.0.1",
            "postgres://u@h/db?ssl%72ootcert=x",
            "postgres://u@%2Fvar%2Frun%2Fpostgresql/db",
            "postgres://u@/db",
            "mysql://u@h/db?local_infile=1",
            "mysql://u@h/db?allowLoadLocalInfile=true",
            "mysql://u@h/db?allowLoadLocalInfileInPath=/tmp",
            "mysql://u@h/db?socket=/tmp/mysql.sock",
            "mysql://u@h/db?ssl-ca=/etc/ssl/ca.pem",
            "mysql://u@h/db?application_name=/etc/passwd",
        ] {
            assert_eq!(refused_code(s), Some("connector_refused"), "{s}");
        }
        assert_eq!(
            refused_code("postgres://u:p@h:5433/db?sslmode=require&application_name=x"),
            None
        );
    }

    #[test]
    fn loose_ipv4_forms() {
        let lo = Ipv4Addr::new(127, 0, 0, 1);
        for s in [
            "127.0.0.1",
            "2130706433",
            "0x7f000001",
            "0177.0.0.1",
            "127.1",
            "0x7f.1",
            "127.0.1",
        ] {
            assert_eq!(parse_ipv4_loose(s), Some(lo), "{s}");
        }
        assert_eq!(parse_ipv4_loose("256.0.0.1"), None);
        assert_eq!(parse_ipv4_loose("1.2.3.4.5"), None);
        assert_eq!(parse_ipv4_loose("08.0.0.1"), None);
        let c = parse_connection_string("postgres://u@2130706433/db").unwrap();
        assert_eq!(c.host, DbHost::Ip(IpAddr::V4(lo)));
        let c = parse_connection_string("postgres://u@0x7f000001/db").unwrap();
        assert_eq!(c.host, DbHost::Ip(IpAddr::V4(lo)));
        assert_eq!(refused_code("postgres://u@1.2.3.999/db"), Some("invalid_request"));
    }

    #[test]
    fn classifies_addresses() {
        use AddrClass::*;
        for (s, want) in [
            ("8.8.8.8", Public),
            ("127.0.0.1", Private),
            ("10.1.2.3", Private),
            ("172.31.0.1", Private),
            ("172.32.0.1", Public),
            ("192.168.1.1", Private),
            ("169.254.1.1", Private),
            ("100.64.0.1", Private),
            ("169.254.169.254", Forbidden),
            ("0.0.0.0", Forbidden),
            ("255.255.255.255", Forbidden),
            ("224.0.0.1", Forbidden),
            ("::1", Private),
            ("::", Forbidden),
            ("fe80::1", Private),
            ("fc00::1", Private),
            ("fd12:3456::1", Private),
            ("fd00:ec2::254", Forbidden),
            ("ff02::1", Forbidden),
            ("::ffff:127.0.0.1", Private),
            ("::ffff:169.254.169.254", Forbidden),
            ("::ffff:8.8.8.8", Public),
            ("::127.0.0.1", Private),
            ("64:ff9b::a00:1", Private),
            ("2002:7f00:1::", Private),
            ("2606:4700::1111", Public),
        ] {
            assert_eq!(classify(s.parse().unwrap()), want, "{s}");
        }
    }

    #[tokio::test]
    async fn resolves_and_checks_every_address() {
        let local = DbHost::Name("localhost".into());
        assert!(resolve_allowed(&local, 5432, false).await.is_err());
        assert!(!resolve_allowed(&local, 5432, true).await.unwrap().is_empty());
        let md = DbHost::Ip("169.254.169.254".parse().unwrap());
        assert!(
            resolve_allowed(&md, 80, true).await.is_err(),
            "metadata is never reachable"
        );
        let v6 = parse_connection_string("postgres://u@[::ffff:7f00:1]/db").unwrap();
        assert!(resolve_allowed(&v6.host, 5432, false).await.is_err());
    }

    #[test]
    fn oauth_values() {
        let v = random_urlsafe(32);
        assert_eq!(v.len(), 43);
        // BASE64URL(SHA256(verifier)), computed independently.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUFU1PT9wk2wkZyJC6v4E"),
            "rGH4KuLFSZOOb6yrLy7KI4Y3jwbE-Xmq5Eo6kghjyCg"
        );
        let u = authorize_url(
            "https://p.example/authorize?x=1",
            "cid",
            "http://t/cb",
            "a b",
            "st",
            "ch",
        )
        .unwrap();
        assert!(u.starts_with("https://p.example/authorize?x=1&response_type=code&client_id=cid&redirect_uri=http%3A%2F%2Ft%2Fcb&scope=a+b&state=st&code_challenge=ch&code_challenge_method=S256"), "{u}");
        assert_eq!(safe_error_code("access_denied"), "access_denied");
        assert_eq!(safe_error_code("<script>"), "provider_error");
        let t = parse_token_response(br#"{"access_token":"t","scope":"repo,user"}"#).unwrap();
        assert_eq!(t.fields["access_token"], "t");
        assert_eq!(t.scopes.unwrap(), vec!["repo", "user"]);
        assert!(parse_token_response(b"access_token=t&scope=repo").is_some());
        assert!(parse_token_response(br#"{"error":"bad_verification_code"}"#).is_none());
        assert!(parse_token_response(br#"{"ok":false,"access_token":"x"}"#).is_none());
        assert!(parse_token_response(b"<html>").is_none());
    }
}
