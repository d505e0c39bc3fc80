//! The registry of runtime settings (admin.md, "Settings"): every key the admin API may store,
//! with its type, description and whether it is secret. A key is the dotted configuration path it
//! overrides (`providers.openai.api_key` is `[providers.openai] api_key` in `tokenone.toml` and
//! `TOKENONE_PROVIDERS__OPENAI__API_KEY` in the environment). Things that only take effect at
//! start (bind address, database, Redis, the master key) are deliberately not registered.

use crate::catalogue::{validate_catalogue, Path, PROVIDERS};
use crate::config::{Config, OAUTH_APPS};
use serde_json::Value;
use std::sync::OnceLock;

/// What values a setting takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingType {
    /// Any string (may be empty).
    Text,
    /// A string stored sealed and shown masked.
    Secret,
    /// An absolute `http(s)://` URL, or empty.
    Url,
    Bool,
    /// A whole number within `min..=max`; a JSON number or a decimal string.
    Integer {
        min: u64,
        max: u64,
    },
    /// A JSON array of non-empty strings.
    StringList,
    /// The catalogue of delivery paths: a JSON array of paths (economics.md).
    Catalogue,
}

#[derive(Debug, Clone)]
pub struct SettingDef {
    pub key: String,
    pub ty: SettingType,
    pub description: String,
}

impl SettingDef {
    pub fn secret(&self) -> bool {
        self.ty == SettingType::Secret
    }

    /// Checks `value` against the setting's type and returns its canonical stored form (numbers
    /// as JSON numbers, the catalogue re-serialised). Cross-field rules are checked afterwards by
    /// [`Config::with_overrides`].
    pub fn parse(&self, value: &Value) -> Result<Value, String> {
        let key = &self.key;
        let text = |max: usize| -> Result<String, String> {
            let Value::String(s) = value else {
                return Err(format!("`{key}` expects a string"));
            };
            if s.chars().count() > max {
                return Err(format!("`{key}` must be at most {max} characters"));
            }
            if s.chars().any(|c| c.is_control()) {
                return Err(format!("`{key}` must not contain control characters"));
            }
            Ok(s.clone())
        };
        match self.ty {
            SettingType::Text => text(2000).map(Value::String),
            SettingType::Secret => text(8192).map(Value::String),
            SettingType::Url => {
                let s = text(2000)?;
                if !s.is_empty() && !is_http_url(&s) {
                    return Err(format!("`{key}` must be an http:// or https:// URL (or empty)"));
                }
                Ok(Value::String(s))
            }
            SettingType::Bool => match value {
                Value::Bool(b) => Ok(Value::Bool(*b)),
                _ => Err(format!("`{key}` expects true or false")),
            },
            SettingType::Integer { min, max } => {
                let n = match value {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
                    _ => None,
                }
                .ok_or_else(|| format!("`{key}` expects a whole number"))?;
                if n < min || n > max {
                    return Err(format!("`{key}` must be between {min} and {max}"));
                }
                Ok(Value::from(n))
            }
            SettingType::StringList => {
                let Value::Array(items) = value else {
                    return Err(format!("`{key}` expects an array of strings"));
                };
                if items.len() > 100 {
                    return Err(format!("`{key}` takes at most 100 entries"));
                }
                for item in items {
                    match item {
                        Value::String(s)
                            if !s.is_empty()
                                && s.chars().count() <= 500
                                && !s.chars().any(|c| c.is_whitespace() || c.is_control()) => {}
                        _ => return Err(format!("`{key}` entries must be non-empty strings without spaces")),
                    }
                }
                Ok(value.clone())
            }
            SettingType::Catalogue => {
                if !value.is_array() {
                    return Err(format!("`{key}` expects a JSON array of delivery paths"));
                }
                let paths: Vec<Path> = serde_json::from_value(value.clone()).map_err(|e| format!("`{key}`: {e}"))?;
                validate_catalogue(&paths).map_err(|e| format!("`{key}`: {e}"))?;
                serde_json::to_value(&paths).map_err(|e| format!("`{key}`: {e}"))
            }
        }
    }
}

fn is_http_url(s: &str) -> bool {
    let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !s.chars().any(|c| c.is_whitespace())
        }
        None => false,
    }
}

fn def(key: impl Into<String>, ty: SettingType, description: impl Into<String>) -> SettingDef {
    SettingDef {
        key: key.into(),
        ty,
        description: description.into(),
    }
}

const fn int(min: u64, max: u64) -> SettingType {
    SettingType::Integer { min, max }
}

fn build() -> Vec<SettingDef> {
    use SettingType::*;
    let mut v = Vec::new();
    for p in PROVIDERS {
        v.push(def(
            format!("providers.{p}.base_url"),
            Url,
            format!("Base URL of the {p} API, with its version path; empty disables the provider."),
        ));
        v.push(def(
            format!("providers.{p}.api_key"),
            Secret,
            format!("Credential TokenOne sends to {p}; live calls need it. Stored sealed."),
        ));
    }
    for shape in ["openai", "anthropic", "gemini"] {
        v.push(def(
            format!("ratelimit.{shape}_per_minute"),
            int(1, 1_000_000),
            format!("Default calls per minute per key on the {shape}-shaped proxy routes (a key may set its own)."),
        ));
    }
    v.push(def(
        "auth.signup_enabled",
        Bool,
        "Whether anyone may register a new tenant (POST /api/auth/register).",
    ));
    v.push(def(
        "auth.access_ttl_seconds",
        int(1, 86_400),
        "Lifetime of an access token, in seconds.",
    ));
    v.push(def(
        "auth.refresh_ttl_seconds",
        int(1, 31_536_000),
        "Lifetime of a refresh token (a login session), in seconds.",
    ));
    v.push(def(
        "wallet.reserve_default_output_tokens",
        int(1, 10_000_000),
        "Output tokens a live call reserves for when the request sets no output limit.",
    ));
    v.push(def(
        "wallet.reservation_ttl_seconds",
        int(3, 86_400),
        "Holds older than this whose call never settled (a crashed replica) are voided.",
    ));
    v.push(def(
        "routing.catalogue",
        Catalogue,
        "Every delivery path: [{id, provider, publicModel, upstreamModel, tier, format, inputUsdPerMTok, \
         outputUsdPerMTok, cachedInputUsdPerMTok?, vision, tools, enabled}].",
    ));
    v.push(def(
        "proxy.max_body_bytes",
        int(1024, 1 << 30),
        "Largest request body the proxy routes accept.",
    ));
    v.push(def(
        "proxy.connect_timeout_ms",
        int(1, 600_000),
        "Time allowed to connect to an upstream, in milliseconds.",
    ));
    v.push(def(
        "proxy.first_byte_timeout_ms",
        int(1, 3_600_000),
        "Time allowed for an upstream's first byte, in milliseconds.",
    ));
    v.push(def(
        "proxy.idle_timeout_ms",
        int(1, 3_600_000),
        "Longest silence allowed inside an upstream stream, in milliseconds.",
    ));
    v.push(def(
        "sse.heartbeat_seconds",
        int(1, 3_600),
        "Interval of heartbeat comments on server-sent event streams.",
    ));
    v.push(def(
        "connectors.allow_private_networks",
        Bool,
        "Allow connectors to reach private, loopback and link-local addresses.",
    ));
    v.push(def(
        "connectors.oauth_state_ttl_seconds",
        int(1, 86_400),
        "Validity of an OAuth authorisation round trip, in seconds.",
    ));
    for (ty, ..) in OAUTH_APPS {
        let k = |f: &str| format!("connectors.{ty}.{f}");
        v.push(def(k("client_id"), Text, format!("OAuth client id of the {ty} app.")));
        v.push(def(
            k("client_secret"),
            Secret,
            format!("OAuth client secret of the {ty} app. Stored sealed."),
        ));
        v.push(def(
            k("authorize_url"),
            Url,
            format!("{ty} OAuth authorisation endpoint."),
        ));
        v.push(def(k("token_url"), Url, format!("{ty} OAuth token endpoint.")));
        v.push(def(
            k("scopes"),
            Text,
            format!("Space-separated scopes requested from {ty}."),
        ));
    }
    v.push(def(
        "server.public_url",
        Url,
        "The URL clients reach this installation at (invite links, OAuth redirects); empty: derived from the bind address.",
    ));
    v.push(def("server.cors_origins", StringList, "Origins allowed by CORS."));
    v.push(def(
        "smtp.host",
        Text,
        "Outgoing mail server for invites; empty sends no mail.",
    ));
    v.push(def("smtp.port", int(1, 65_535), "Port of the mail server."));
    v.push(def("smtp.username", Text, "User name at the mail server."));
    v.push(def(
        "smtp.password",
        Secret,
        "Password at the mail server. Stored sealed.",
    ));
    v.push(def("smtp.from", Text, "Sender address of invite mails."));
    v
}

/// Every registered setting, in a stable order.
pub fn registry() -> &'static [SettingDef] {
    static REGISTRY: OnceLock<Vec<SettingDef>> = OnceLock::new();
    REGISTRY.get_or_init(build)
}

pub fn lookup(key: &str) -> Option<&'static SettingDef> {
    registry().iter().find(|d| d.key == key)
}

/// The value `key` has in `cfg` (plaintext for secrets: mask before showing it).
pub fn value_in(cfg: &Config, key: &str) -> Option<Value> {
    let mut node = serde_json::to_value(cfg).ok()?;
    for part in key.split('.') {
        node = node.as_object_mut()?.remove(part)?;
    }
    Some(node)
}

/// How a value is shown: a secret as `"••••" + last 4`, or `null` when it is unset (empty).
pub fn display(def: &SettingDef, value: &Value) -> Value {
    if !def.secret() {
        return value.clone();
    }
    match value.as_str() {
        Some(s) if !s.is_empty() => Value::String(crate::secret::Secret::new(s).masked()),
        _ => Value::Null,
    }
}

/// Associated data binding a sealed setting to its key: a ciphertext copied to another key's
/// row does not open.
pub fn seal_aad(key: &str) -> Vec<u8> {
    format!("setting|{key}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_key_is_a_config_path_of_its_type() {
        let cfg = Config::default();
        for d in registry() {
            let v = value_in(&cfg, &d.key).unwrap_or_else(|| panic!("{} is not a config path", d.key));
            let ok = match d.ty {
                SettingType::Text | SettingType::Secret | SettingType::Url => v.is_string(),
                SettingType::Bool => v.is_boolean(),
                SettingType::Integer { .. } => v.is_u64(),
                SettingType::StringList | SettingType::Catalogue => v.is_array(),
            };
            assert!(ok, "{} has type {:?} but defaults to {v}", d.key, d.ty);
            // The default passes its own validation and survives the layering.
            let canon = d.parse(&v).unwrap_or_else(|e| panic!("{}: {e}", d.key));
            cfg.with_overrides([(d.key.as_str(), &canon)])
                .unwrap_or_else(|e| panic!("{}: {e}", d.key));
        }
        let keys: Vec<&str> = registry().iter().map(|d| d.key.as_str()).collect();
        for k in [
            "providers.openrouter.api_key",
            "ratelimit.gemini_per_minute",
            "routing.catalogue",
            "connectors.google-drive.client_secret",
            "connectors.slack.scopes",
            "smtp.password",
            "server.cors_origins",
        ] {
            assert!(keys.contains(&k), "{k}");
        }
        assert!(!keys.contains(&"server.bind"));
        assert!(!keys.contains(&"database.url"));
        let secrets: Vec<&str> = registry()
            .iter()
            .filter(|d| d.secret())
            .map(|d| d.key.as_str())
            .collect();
        assert_eq!(secrets.len(), 5 + OAUTH_APPS.len() + 1, "{secrets:?}");
    }

    #[test]
    fn values_are_type_checked() {
        let rl = lookup("ratelimit.openai_per_minute").unwrap();
        assert_eq!(rl.parse(&json!(7)).unwrap(), json!(7));
        assert_eq!(rl.parse(&json!("7")).unwrap(), json!(7));
        for bad in [
            json!(0),
            json!(-1),
            json!(1.5),
            json!("x"),
            json!(true),
            json!(null),
            json!(""),
        ] {
            assert!(rl.parse(&bad).is_err(), "{bad}");
        }
        let b = lookup("auth.signup_enabled").unwrap();
        assert_eq!(b.parse(&json!(false)).unwrap(), json!(false));
        assert!(b.parse(&json!("false")).is_err());
        let u = lookup("providers.openai.base_url").unwrap();
        assert!(u.parse(&json!("http://127.0.0.1:9/v1")).is_ok());
        assert!(u.parse(&json!("")).is_ok());
        assert!(u.parse(&json!("ftp://x")).is_err());
        assert!(u.parse(&json!("https://")).is_err());
        let l = lookup("server.cors_origins").unwrap();
        assert!(l.parse(&json!(["https://a.example"])).is_ok());
        assert!(l.parse(&json!("https://a.example")).is_err());
        assert!(l.parse(&json!([""])).is_err());
        let c = lookup("routing.catalogue").unwrap();
        let mut cat = serde_json::to_value(crate::catalogue::default_catalogue()).unwrap();
        assert_eq!(c.parse(&cat).unwrap(), cat);
        cat[0]["id"] = cat[1]["id"].clone();
        assert!(c.parse(&cat).unwrap_err().contains("duplicate"));
        assert!(c.parse(&json!([{"id": "x"}])).is_err());
        assert!(c.parse(&json!({})).is_err());
        let s = lookup("smtp.password").unwrap();
        assert!(s.secret());
        assert_eq!(display(s, &json!("hunter2-pass")), json!("••••pass"));
        assert_eq!(display(s, &json!("")), json!(null));
        assert!(lookup("server.bind").is_none());
    }
}
