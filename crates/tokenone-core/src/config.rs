//! Configuration: built-in defaults < `tokenone.toml` < `TOKENONE_*` environment < settings stored
//! through the admin API. Every layer is applied to one JSON tree shaped like [`Config`], so
//! an unknown key is caught with its full dotted name and an environment string is converted to
//! the type its key has in the defaults (a generic layering crate can do neither).

use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub auth: AuthConfig,
    pub vault: VaultConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub providers: ProvidersConfig,
    pub ratelimit: RateLimitConfig,
    pub wallet: WalletConfig,
    pub proxy: ProxyConfig,
    pub sse: SseConfig,
    pub connectors: ConnectorsConfig,
    pub storage: StorageConfig,
    pub routing: RoutingConfig,
    pub smtp: SmtpConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on (`TOKENONE_BIND`).
    pub bind: String,
    /// The URL clients reach this installation at; used in invite links, OAuth redirects and the
    /// handoff document. Empty: `http://<bind>`.
    pub public_url: String,
    /// Mark cookies `Secure` (set when served over HTTPS).
    pub secure_cookies: bool,
    /// Origins allowed by CORS; none by default.
    pub cors_origins: Vec<String>,
    /// Body limit on `/api` routes.
    pub api_max_body_bytes: u64,
    /// A client that has not sent its request headers within this time is disconnected.
    pub header_read_timeout_ms: u64,
    /// On SIGTERM, in-flight requests get this long to finish.
    pub shutdown_grace_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path` or `postgres://...` (`DATABASE_URL`). The scheme picks the backend.
    pub url: Secret,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://...` (`REDIS_URL`); empty means no Redis (single-process mode).
    pub url: Secret,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 signing secret. Empty: generated on first start and stored sealed in the database.
    pub jwt_secret: Secret,
    pub access_ttl_seconds: u64,
    pub refresh_ttl_seconds: u64,
    pub signup_enabled: bool,
    /// Failed logins for one email within `login_window_seconds` before 429.
    pub login_max_failures: u32,
    pub login_window_seconds: u64,
    /// Argon2id memory cost in KiB (at least 19456).
    pub argon2_memory_kib: u32,
    /// Argon2id iterations (at least 2).
    pub argon2_iterations: u32,
    /// Validity of a project invite link.
    pub invite_ttl_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct VaultConfig {
    /// 32 bytes, base64 (`TOKENONE_MASTER_KEY`). Empty: read from `master_key_file`, or generated
    /// there (mode 0600) on first start.
    pub master_key: Secret,
    /// Where the master key lives when not given directly. Empty: `tokenone.key` beside the
    /// SQLite file, or in the working directory for PostgreSQL.
    pub master_key_file: String,
    /// Other master keys (base64) that still open records: the previous key while a rotation
    /// re-wraps (`TOKENONE_VAULT__PREVIOUS_MASTER_KEYS`, comma-separated). A key file's
    /// `<file>.previous` companion is read too.
    pub previous_master_keys: Vec<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Bootstrap platform admin (`TOKENONE_ADMIN_EMAIL`); default `admin@localhost`.
    pub email: String,
    /// Bootstrap password (`TOKENONE_ADMIN_PASSWORD`); empty: random, printed once to stderr.
    pub password: Secret,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter (`TOKENONE_LOG`).
    pub filter: String,
    /// `pretty` or `json` (`TOKENONE_LOG_FORMAT`).
    pub format: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderConfig {
    pub base_url: String,
    pub api_key: Secret,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProvidersConfig {
    pub openai: ProviderConfig,
    pub anthropic: ProviderConfig,
    pub gemini: ProviderConfig,
    pub fireworks: ProviderConfig,
    pub openrouter: ProviderConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub anthropic_per_minute: u32,
    pub openai_per_minute: u32,
    pub gemini_per_minute: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalletConfig {
    pub reserve_default_output_tokens: u64,
    pub reservation_ttl_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    pub max_body_bytes: u64,
    pub connect_timeout_ms: u64,
    pub first_byte_timeout_ms: u64,
    pub idle_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SseConfig {
    pub heartbeat_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectorsConfig {
    pub allow_private_networks: bool,
    pub oauth_state_ttl_seconds: u64,
    /// OAuth apps by connector type (`connectors.github.client_id`, ...). Unknown types are
    /// refused by the layering, which only knows the built-in ones.
    #[serde(flatten)]
    pub apps: BTreeMap<String, OAuthAppConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthAppConfig {
    pub client_id: String,
    pub client_secret: Secret,
    pub authorize_url: String,
    pub token_url: String,
    /// Space-separated scopes requested at authorisation.
    pub scopes: String,
}

/// Built-in OAuth connector types with their providers' real endpoints and default scopes.
pub const OAUTH_APPS: &[(&str, &str, &str, &str)] = &[
    (
        "github",
        "https://github.com/login/oauth/authorize",
        "https://github.com/login/oauth/access_token",
        "repo read:user",
    ),
    (
        "gitlab",
        "https://gitlab.com/oauth/authorize",
        "https://gitlab.com/oauth/token",
        "read_api read_user",
    ),
    (
        "bitbucket",
        "https://bitbucket.org/site/oauth2/authorize",
        "https://bitbucket.org/site/oauth2/access_token",
        "repository account",
    ),
    (
        "jira",
        "https://auth.atlassian.com/authorize",
        "https://auth.atlassian.com/oauth/token",
        "read:jira-work read:jira-user offline_access",
    ),
    (
        "linear",
        "https://linear.app/oauth/authorize",
        "https://api.linear.app/oauth/token",
        "read",
    ),
    (
        "notion",
        "https://api.notion.com/v1/oauth/authorize",
        "https://api.notion.com/v1/oauth/token",
        "",
    ),
    (
        "confluence",
        "https://auth.atlassian.com/authorize",
        "https://auth.atlassian.com/oauth/token",
        "read:confluence-content.all offline_access",
    ),
    (
        "google-drive",
        "https://accounts.google.com/o/oauth2/v2/auth",
        "https://oauth2.googleapis.com/token",
        "https://www.googleapis.com/auth/drive.readonly",
    ),
    (
        "slack",
        "https://slack.com/oauth/v2/authorize",
        "https://slack.com/api/oauth.v2.access",
        "channels:read chat:write",
    ),
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Every way TokenOne can deliver a model (economics.md); the seeded catalogue by default.
    pub catalogue: Vec<crate::catalogue::Path>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            catalogue: crate::catalogue::default_catalogue(),
        }
    }
}

/// Outgoing mail for invites; unset host means no mail is sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u64,
    pub username: String,
    pub password: Secret,
    pub from: String,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: 587,
            username: String::new(),
            password: Secret::default(),
            from: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Blob directory for cold-storage archives. Empty: `cold/` beside the SQLite file.
    pub cold_dir: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1:8080".into(),
            public_url: String::new(),
            secure_cookies: false,
            cors_origins: Vec::new(),
            api_max_body_bytes: 1024 * 1024,
            header_read_timeout_ms: 10_000,
            shutdown_grace_seconds: 30,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: Secret::new("sqlite://tokenone.db"),
            max_connections: 16,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: Secret::default(),
            access_ttl_seconds: 900,
            refresh_ttl_seconds: 604_800,
            signup_enabled: true,
            login_max_failures: 10,
            login_window_seconds: 900,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            invite_ttl_seconds: 7 * 24 * 3600,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            filter: "info".into(),
            format: "pretty".into(),
        }
    }
}

impl ProviderConfig {
    fn with_url(url: &str) -> Self {
        ProviderConfig {
            base_url: url.into(),
            api_key: Secret::default(),
        }
    }
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig::with_url("")
    }
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        ProvidersConfig {
            openai: ProviderConfig::with_url("https://api.openai.com/v1"),
            anthropic: ProviderConfig::with_url("https://api.anthropic.com/v1"),
            gemini: ProviderConfig::with_url("https://generativelanguage.googleapis.com/v1beta"),
            fireworks: ProviderConfig::with_url("https://api.fireworks.ai/inference/v1"),
            openrouter: ProviderConfig::with_url("https://openrouter.ai/api/v1"),
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            anthropic_per_minute: 60,
            openai_per_minute: 120,
            gemini_per_minute: 60,
        }
    }
}

impl Default for WalletConfig {
    fn default() -> Self {
        WalletConfig {
            reserve_default_output_tokens: 4096,
            reservation_ttl_seconds: 900,
        }
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            max_body_bytes: 10 * 1024 * 1024,
            connect_timeout_ms: 5_000,
            first_byte_timeout_ms: 120_000,
            idle_timeout_ms: 60_000,
        }
    }
}

impl Default for SseConfig {
    fn default() -> Self {
        SseConfig { heartbeat_seconds: 25 }
    }
}

impl Default for ConnectorsConfig {
    fn default() -> Self {
        ConnectorsConfig {
            allow_private_networks: false,
            oauth_state_ttl_seconds: 600,
            apps: OAUTH_APPS
                .iter()
                .map(|(name, authorize, token, scopes)| {
                    let app = OAuthAppConfig {
                        client_id: String::new(),
                        client_secret: Secret::default(),
                        authorize_url: authorize.to_string(),
                        token_url: token.to_string(),
                        scopes: scopes.to_string(),
                    };
                    (name.to_string(), app)
                })
                .collect(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("unknown configuration key `{key}` in {source_name}")]
    UnknownKey { key: String, source_name: String },
    #[error("configuration key `{key}` from {source_name}: {message}")]
    BadValue {
        key: String,
        source_name: String,
        message: String,
    },
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Environment variables with a fixed meaning, outside the `TOKENONE_SECTION__KEY` scheme.
pub const WELL_KNOWN_ENV: &[(&str, &str)] = &[
    ("DATABASE_URL", "database.url"),
    ("REDIS_URL", "redis.url"),
    ("TOKENONE_BIND", "server.bind"),
    ("TOKENONE_MASTER_KEY", "vault.master_key"),
    ("TOKENONE_ADMIN_EMAIL", "admin.email"),
    ("TOKENONE_ADMIN_PASSWORD", "admin.password"),
    ("TOKENONE_LOG", "log.filter"),
    ("TOKENONE_LOG_FORMAT", "log.format"),
];

/// Environment variables TokenOne reads for other purposes; not configuration keys.
const OTHER_ENV: &[&str] = &["TOKENONE_CONFIG", "TOKENONE_EXPORT_PASSPHRASE"];

impl Config {
    /// The full layered configuration: defaults, then the file (if any), then the environment.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let mut tree = Config::default().to_tree();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            let file_tree: toml::Value = toml::from_str(&text).map_err(|e| ConfigError::Read {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            let file_json = serde_json::to_value(file_tree).map_err(|e| ConfigError::Invalid(e.to_string()))?;
            merge_file(&mut tree, &file_json, "", &path.display().to_string())?;
        }
        for (key, value) in env_overrides(env)? {
            set_from_string(&mut tree, &key, &value, "the environment")?;
        }
        Config::from_tree(tree)
    }

    /// Applies stored settings (`key` → JSON value) on top; the admin API's layer.
    pub fn with_overrides<'a>(
        &self,
        overrides: impl IntoIterator<Item = (&'a str, &'a Value)>,
    ) -> Result<Config, ConfigError> {
        let mut tree = self.to_tree();
        for (key, value) in overrides {
            set_value(&mut tree, key, value.clone(), "stored settings")?;
        }
        Config::from_tree(tree)
    }

    /// The documented default configuration as TOML (`tokenone config print-default`).
    pub fn default_toml() -> String {
        toml::to_string_pretty(&Config::default()).unwrap_or_default()
    }

    fn to_tree(&self) -> Value {
        // Serialising plain structs of strings, numbers and bools cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    fn from_tree(tree: Value) -> Result<Config, ConfigError> {
        let cfg: Config = serde_json::from_value(tree).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.into()));
        if self.auth.argon2_memory_kib < 19_456 || self.auth.argon2_iterations < 2 {
            return bad("auth.argon2_memory_kib must be >= 19456 and auth.argon2_iterations >= 2");
        }
        if self.auth.access_ttl_seconds == 0 || self.auth.refresh_ttl_seconds == 0 {
            return bad("token lifetimes must be positive");
        }
        if !matches!(self.log.format.as_str(), "pretty" | "json") {
            return bad("log.format must be `pretty` or `json`");
        }
        crate::catalogue::validate_catalogue(&self.routing.catalogue)
            .map_err(|e| ConfigError::Invalid(format!("routing.catalogue: {e}")))?;
        let url = self.database.url.expose();
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return bad("database.url must start with sqlite:, postgres:// or postgresql://");
        }
        Ok(())
    }

    /// The public URL, derived from the bind address when not configured.
    pub fn public_url(&self) -> String {
        if self.server.public_url.is_empty() {
            format!("http://{}", self.server.bind)
        } else {
            self.server.public_url.trim_end_matches('/').to_string()
        }
    }

    /// The SQLite file's directory, where default key and blob files live; `.` otherwise.
    pub fn data_dir(&self) -> PathBuf {
        let url = self.database.url.expose();
        if let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            let path = rest.split('?').next().unwrap_or("");
            if !path.is_empty() && path != ":memory:" {
                if let Some(parent) = Path::new(path).parent() {
                    if !parent.as_os_str().is_empty() {
                        return parent.to_path_buf();
                    }
                }
            }
        }
        PathBuf::from(".")
    }
}

/// Turns the environment into dotted keys: well-known names, `TOKENONE_SECTION__KEY`, and the
/// `*_FILE` variant of either (the file's contents, trailing newline removed).
fn env_overrides(env: impl IntoIterator<Item = (String, String)>) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    let mut vars: Vec<(String, String)> = env.into_iter().collect();
    vars.sort();
    for (name, value) in vars {
        // A name that is itself a configuration key (`TOKENONE_VAULT__MASTER_KEY_FILE` is
        // `vault.master_key_file`) is that key, not the `_FILE` form of another one.
        let is_key = name
            .strip_prefix("TOKENONE_")
            .is_some_and(|rest| rest.contains("__") && defaults_have(&rest.to_ascii_lowercase().replace("__", ".")));
        let (base, from_file) = match name.strip_suffix("_FILE") {
            Some(b) if !is_key => (b.to_string(), true),
            _ => (name.clone(), false),
        };
        let key = if let Some((_, k)) = WELL_KNOWN_ENV.iter().find(|(n, _)| *n == base) {
            k.to_string()
        } else if let Some(rest) = base.strip_prefix("TOKENONE_") {
            if OTHER_ENV.contains(&base.as_str()) || !rest.contains("__") {
                continue;
            }
            rest.to_ascii_lowercase().replace("__", ".")
        } else {
            continue;
        };
        let value = if from_file {
            std::fs::read_to_string(&value)
                .map_err(|e| ConfigError::Read {
                    path: value.clone(),
                    message: e.to_string(),
                })?
                .trim_end_matches(['\n', '\r'])
                .to_string()
        } else {
            value
        };
        out.push((key, value));
    }
    Ok(out)
}

/// Whether the default configuration has the dotted `key`.
fn defaults_have(key: &str) -> bool {
    let mut tree = Config::default().to_tree();
    slot_mut(&mut tree, key, "").is_ok()
}

fn merge_file(tree: &mut Value, file: &Value, prefix: &str, source: &str) -> Result<(), ConfigError> {
    let Value::Object(file_map) = file else {
        return Err(ConfigError::Invalid(format!("{source} must be a TOML table")));
    };
    for (k, v) in file_map {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let Some(slot) = tree.as_object_mut().and_then(|m| m.get_mut(k)) else {
            return Err(ConfigError::UnknownKey {
                key,
                source_name: source.into(),
            });
        };
        if slot.is_object() {
            merge_file(slot, v, &key, source)?;
        } else {
            check_type(slot, v, &key, source)?;
            *slot = v.clone();
        }
    }
    Ok(())
}

fn check_type(slot: &Value, v: &Value, key: &str, source: &str) -> Result<(), ConfigError> {
    let same = matches!(
        (slot, v),
        (Value::String(_), Value::String(_))
            | (Value::Bool(_), Value::Bool(_))
            | (Value::Number(_), Value::Number(_))
            | (Value::Array(_), Value::Array(_))
    );
    if same {
        Ok(())
    } else {
        Err(ConfigError::BadValue {
            key: key.into(),
            source_name: source.into(),
            message: format!("expected {}", type_name(slot)),
        })
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
        Value::Null => "a value",
    }
}

fn slot_mut<'a>(tree: &'a mut Value, key: &str, source: &str) -> Result<&'a mut Value, ConfigError> {
    let mut node = tree;
    for part in key.split('.') {
        node = node
            .as_object_mut()
            .and_then(|m: &mut Map<String, Value>| {
                // `google_drive` in an environment variable names `google-drive`.
                let alt = part.replace('_', "-");
                if m.contains_key(part) {
                    m.get_mut(part)
                } else {
                    m.get_mut(&alt)
                }
            })
            .ok_or_else(|| ConfigError::UnknownKey {
                key: key.into(),
                source_name: source.into(),
            })?;
    }
    if node.is_object() {
        return Err(ConfigError::UnknownKey {
            key: key.into(),
            source_name: source.into(),
        });
    }
    Ok(node)
}

/// Sets `key` from a string, converted to the type the key has in the defaults.
pub fn set_from_string(tree: &mut Value, key: &str, raw: &str, source: &str) -> Result<(), ConfigError> {
    let slot = slot_mut(tree, key, source)?;
    let bad = |m: &str| ConfigError::BadValue {
        key: key.into(),
        source_name: source.into(),
        message: m.into(),
    };
    let value = match slot {
        Value::String(_) | Value::Null => Value::String(raw.into()),
        Value::Bool(_) => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Value::Bool(true),
            "false" | "0" | "no" | "off" => Value::Bool(false),
            _ => return Err(bad("expected a boolean")),
        },
        Value::Number(_) => {
            let n: u64 = raw.trim().parse().map_err(|_| bad("expected a non-negative integer"))?;
            Value::from(n)
        }
        Value::Array(_) => {
            let t = raw.trim();
            if t.starts_with('[') {
                serde_json::from_str(t).map_err(|_| bad("expected a JSON array"))?
            } else {
                Value::Array(
                    t.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.into()))
                        .collect(),
                )
            }
        }
        Value::Object(_) => return Err(bad("is a section, not a value")),
    };
    *slot = value;
    Ok(())
}

/// Sets `key` to a JSON value of the key's type.
pub fn set_value(tree: &mut Value, key: &str, value: Value, source: &str) -> Result<(), ConfigError> {
    let slot = slot_mut(tree, key, source)?;
    if let Value::String(s) = &value {
        if !slot.is_string() {
            let s = s.clone();
            return set_from_string(tree, key, &s, source);
        }
    }
    check_type(slot, &value, key, source)?;
    *slot = value;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:8080");
        assert_eq!(c.database.url.expose(), "sqlite://tokenone.db");
        assert_eq!(c.auth.access_ttl_seconds, 900);
        assert_eq!(c.auth.refresh_ttl_seconds, 604_800);
        assert_eq!(c.ratelimit.openai_per_minute, 120);
        assert_eq!(c.proxy.max_body_bytes, 10 * 1024 * 1024);
        assert_eq!(c.sse.heartbeat_seconds, 25);
        assert!(c.auth.signup_enabled);
    }

    #[test]
    fn layers_file_then_env() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            "[server]\nbind = \"0.0.0.0:9000\"\n[auth]\naccess_ttl_seconds = 60\nsignup_enabled = false"
        )
        .unwrap();
        let c = Config::load(
            Some(f.path()),
            env(&[
                ("TOKENONE_AUTH__ACCESS_TTL_SECONDS", "30"),
                ("TOKENONE_PROVIDERS__OPENAI__BASE_URL", "http://127.0.0.1:1/v1"),
                ("DATABASE_URL", "postgres://x@h/db"),
                ("TOKENONE_LOG", "debug"),
                ("TOKENONE_CONFIG", "ignored"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.bind, "0.0.0.0:9000", "file beats default");
        assert_eq!(c.auth.access_ttl_seconds, 30, "env beats file");
        assert!(!c.auth.signup_enabled, "file value kept when env is silent");
        assert_eq!(c.providers.openai.base_url, "http://127.0.0.1:1/v1");
        assert_eq!(c.database.url.expose(), "postgres://x@h/db");
        assert_eq!(c.log.filter, "debug");
    }

    #[test]
    fn stored_settings_beat_env() {
        let c = Config::load(None, env(&[("TOKENONE_RATELIMIT__OPENAI_PER_MINUTE", "5")])).unwrap();
        let v = Value::from(7);
        let s = Value::String("false".into());
        let c2 = c
            .with_overrides([("ratelimit.openai_per_minute", &v), ("auth.signup_enabled", &s)])
            .unwrap();
        assert_eq!(c2.ratelimit.openai_per_minute, 7);
        assert!(!c2.auth.signup_enabled);
    }

    #[test]
    fn unknown_file_key_is_named() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "[server]\nbindd = \"x\"").unwrap();
        let err = Config::load(Some(f.path()), env(&[])).unwrap_err();
        assert!(
            matches!(&err, ConfigError::UnknownKey { key, .. } if key == "server.bindd"),
            "{err}"
        );
        assert!(err.to_string().contains("server.bindd"));
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "colour = 1").unwrap();
        assert!(Config::load(Some(f.path()), env(&[]))
            .unwrap_err()
            .to_string()
            .contains("`colour`"));
    }

    #[test]
    fn wrong_types_are_named() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "[auth]\nsignup_enabled = \"maybe\"").unwrap();
        let err = Config::load(Some(f.path()), env(&[])).unwrap_err();
        assert!(err.to_string().contains("auth.signup_enabled"), "{err}");
        let err = Config::load(None, env(&[("TOKENONE_AUTH__ACCESS_TTL_SECONDS", "soon")])).unwrap_err();
        assert!(err.to_string().contains("auth.access_ttl_seconds"), "{err}");
        let err = Config::load(None, env(&[("TOKENONE_NOPE__X", "1")])).unwrap_err();
        assert!(matches!(err, ConfigError::UnknownKey { .. }));
    }

    #[test]
    fn file_variants_of_secrets() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "s3cret-from-file").unwrap();
        let path = f.path().display().to_string();
        let c = Config::load(
            None,
            env(&[
                ("TOKENONE_ADMIN_PASSWORD_FILE", &path),
                ("TOKENONE_AUTH__JWT_SECRET_FILE", &path),
            ]),
        )
        .unwrap();
        assert_eq!(c.admin.password.expose(), "s3cret-from-file");
        assert_eq!(c.auth.jwt_secret.expose(), "s3cret-from-file");
    }

    #[test]
    fn a_key_ending_in_file_is_that_key() {
        let c = Config::load(
            None,
            env(&[("TOKENONE_VAULT__MASTER_KEY_FILE", "/etc/tokenone/master.key")]),
        )
        .unwrap();
        assert_eq!(c.vault.master_key_file, "/etc/tokenone/master.key");
        assert!(c.vault.master_key.is_empty());
    }

    #[test]
    fn secrets_masked_in_debug() {
        let c = Config::load(
            None,
            env(&[
                ("TOKENONE_PROVIDERS__OPENAI__API_KEY", "sk-live-abcdef"),
                ("DATABASE_URL", "postgres://u:hunter2@h/db"),
            ]),
        )
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("sk-live-abcdef"));
        assert!(!dbg.contains("hunter2"));
    }

    #[test]
    fn print_default_round_trips() {
        let text = Config::default_toml();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let c = Config::load(Some(f.path()), env(&[])).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:8080");
        assert!(text.contains("[providers.openai]"));
    }

    #[test]
    fn connector_apps_and_catalogue_layer() {
        let c = Config::load(
            None,
            env(&[
                ("TOKENONE_CONNECTORS__GITHUB__CLIENT_ID", "gh-client"),
                (
                    "TOKENONE_CONNECTORS__GOOGLE_DRIVE__TOKEN_URL",
                    "http://127.0.0.1:9/token",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(c.connectors.apps["github"].client_id, "gh-client");
        assert_eq!(
            c.connectors.apps["github"].token_url,
            "https://github.com/login/oauth/access_token"
        );
        assert_eq!(c.connectors.apps["google-drive"].token_url, "http://127.0.0.1:9/token");
        assert_eq!(c.connectors.apps.len(), 9);
        assert!(Config::load(None, env(&[("TOKENONE_CONNECTORS__MYSPACE__CLIENT_ID", "x")])).is_err());
        assert_eq!(c.routing.catalogue.len(), 15);
        let mut cat = serde_json::to_value(&c.routing.catalogue).unwrap();
        cat[0]["id"] = cat[1]["id"].clone();
        let err = c.with_overrides([("routing.catalogue", &cat)]).unwrap_err();
        assert!(err.to_string().contains("duplicate"), "{err}");
    }

    #[test]
    fn data_dir_follows_sqlite_path() {
        let c = Config::load(
            None,
            env(&[("DATABASE_URL", "sqlite:///var/lib/t1/tokenone.db?mode=rwc")]),
        )
        .unwrap();
        assert_eq!(c.data_dir(), PathBuf::from("/var/lib/t1"));
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.data_dir(), PathBuf::from("."));
    }
}
