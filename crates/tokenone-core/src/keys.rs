//! API keys (`to_live_` / `to_dev_`): the secret is shown once; only an HMAC-SHA256 of it under a
//! server pepper is stored, and lookups go by that hash.

use crate::ids::{ProjectId, TenantId, UserId};
use crate::time::Millis;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::net::IpAddr;
use uuid::Uuid;

pub type KeyId = Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyMode {
    Live,
    Dev,
}

impl KeyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyMode::Live => "live",
            KeyMode::Dev => "dev",
        }
    }
    pub fn prefix(self) -> &'static str {
        match self {
            KeyMode::Live => "to_live_",
            KeyMode::Dev => "to_dev_",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "live" => Some(KeyMode::Live),
            "dev" => Some(KeyMode::Dev),
            _ => None,
        }
    }
}

/// The three proxy shapes a key may be scoped to.
pub const SHAPES: [&str; 3] = ["openai", "anthropic", "gemini"];

/// Per-shape overrides of the tenant's per-minute rate limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openai: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anthropic: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gemini: Option<u32>,
}

impl RateOverrides {
    pub fn for_shape(&self, shape: &str) -> Option<u32> {
        match shape {
            "openai" => self.openai,
            "anthropic" => self.anthropic,
            "gemini" => self.gemini,
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: KeyId,
    pub project_id: ProjectId,
    pub tenant_id: TenantId,
    pub name: String,
    pub mode: KeyMode,
    /// First 12 characters of the secret, e.g. `to_live_Ab3x`.
    pub prefix: String,
    pub last4: String,
    pub scopes: Vec<String>,
    pub rate_limit_per_minute: RateOverrides,
    pub ip_allowlist: Vec<ipnet::IpNet>,
    pub created_at: Millis,
    pub created_by: Option<UserId>,
    pub last_used_at: Option<Millis>,
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

impl ApiKey {
    pub fn allows_shape(&self, shape: &str) -> bool {
        self.scopes.iter().any(|s| s == shape)
    }
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        self.ip_allowlist.is_empty() || self.ip_allowlist.iter().any(|n| n.contains(&ip))
    }
    pub fn usable_at(&self, now: Millis) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

/// What the proxy needs per call: the key and the state of its project.
#[derive(Debug, Clone)]
pub struct KeyAuth {
    pub key: ApiKey,
    pub project_archived: bool,
    pub project_cold: bool,
}

/// A fresh secret: the mode's prefix and 32 random base62 characters.
pub fn generate_secret(mode: KeyMode) -> String {
    format!("{}{}", mode.prefix(), crate::tokens::random_base62(32))
}

/// HMAC-SHA256 of the secret under the server pepper, hex.
pub fn hash_secret(pepper: &[u8], secret: &str) -> String {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(pepper).expect("hmac key");
    mac.update(secret.as_bytes());
    crate::tokens::hex(&mac.finalize().into_bytes())
}

/// Whether a presented string can be a TokenOne key at all (cheap check before hashing).
pub fn looks_like_key(s: &str) -> bool {
    let body = s.strip_prefix("to_live_").or_else(|| s.strip_prefix("to_dev_"));
    body.is_some_and(|b| b.len() == 32 && b.bytes().all(|c| c.is_ascii_alphanumeric()))
}

/// Parses an allowlist entry: a CIDR, or a bare address (as a /32 or /128).
pub fn parse_cidr(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_hashes() {
        let s = generate_secret(KeyMode::Live);
        assert!(s.starts_with("to_live_") && s.len() == 40 && looks_like_key(&s));
        let d = generate_secret(KeyMode::Dev);
        assert!(d.starts_with("to_dev_") && looks_like_key(&d));
        assert!(!looks_like_key("to_live_short") && !looks_like_key("sk-abc"));
        let h1 = hash_secret(b"pepper-1", &s);
        assert_eq!(h1.len(), 64);
        assert_eq!(h1, hash_secret(b"pepper-1", &s));
        assert_ne!(h1, hash_secret(b"pepper-2", &s));
    }

    #[test]
    fn allowlists() {
        let mut k = ApiKey {
            id: Uuid::now_v7(),
            project_id: ProjectId::new(),
            tenant_id: TenantId::new(),
            name: "k".into(),
            mode: KeyMode::Live,
            prefix: "to_live_abcd".into(),
            last4: "wxyz".into(),
            scopes: vec!["openai".into()],
            rate_limit_per_minute: RateOverrides::default(),
            ip_allowlist: vec![],
            created_at: 0,
            created_by: None,
            last_used_at: None,
            expires_at: Some(1000),
            revoked_at: None,
        };
        assert!(k.allows_ip("10.0.0.1".parse().unwrap()));
        k.ip_allowlist = vec![parse_cidr("10.0.0.0/8").unwrap(), parse_cidr("2001:db8::1").unwrap()];
        assert!(k.allows_ip("10.1.2.3".parse().unwrap()));
        assert!(
            k.allows_ip("::ffff:10.1.2.3".parse().unwrap()),
            "IPv4-mapped IPv6 counts as IPv4"
        );
        assert!(k.allows_ip("2001:db8::1".parse().unwrap()));
        assert!(!k.allows_ip("127.0.0.1".parse().unwrap()));
        assert!(k.allows_shape("openai") && !k.allows_shape("gemini"));
        assert!(k.usable_at(999) && !k.usable_at(1000));
        assert!(parse_cidr("300.1.1.1/8").is_none());
    }
}
