//! The HTTP client to upstream vendors: one pooled client, connect timeout, no redirects,
//! `TCP_NODELAY`, and where each vendor wants its credential.

use reqwest::header::HeaderValue;
use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};
use std::time::Duration;
use tokenone_core::catalogue::Format;
use tokenone_core::config::{Config, ProviderConfig};

pub fn client(cfg: &Config) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(cfg.proxy.connect_timeout_ms.max(1)))
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build()
        // Building a client with these plain settings only fails if TLS cannot initialise.
        .expect("http client")
}

pub fn provider<'a>(cfg: &'a Config, name: &str) -> Option<&'a ProviderConfig> {
    match name {
        "openai" => Some(&cfg.providers.openai),
        "anthropic" => Some(&cfg.providers.anthropic),
        "gemini" => Some(&cfg.providers.gemini),
        "fireworks" => Some(&cfg.providers.fireworks),
        "openrouter" => Some(&cfg.providers.openrouter),
        _ => None,
    }
}

/// Has a credential (a provider without one is "unconfigured").
pub fn configured(cfg: &Config, name: &str) -> bool {
    provider(cfg, name).is_some_and(|p| !p.api_key.is_empty() && !p.base_url.is_empty())
}

/// The operation URL: the configured base URL (with its version path) plus the operation.
pub fn url(base: &str, format: Format, upstream_model: &str, stream: bool) -> String {
    let base = base.trim_end_matches('/');
    match format {
        Format::Openai => format!("{base}/chat/completions"),
        Format::Anthropic => format!("{base}/messages"),
        Format::Gemini if stream => format!("{base}/models/{upstream_model}:streamGenerateContent?alt=sse"),
        Format::Gemini => format!("{base}/models/{upstream_model}:generateContent"),
    }
}

/// Operation URLs parsed once: parsing one (the `url` crate, host normalisation included) was
/// ~3 % of the gateway's CPU at saturation, and a deployment calls a handful of distinct URLs
/// (one per provider and operation, and per model for Gemini). A pure memo of `Url::parse`, so
/// one per process; cleared when it reaches `MAX_URLS` entries.
static URLS: LazyLock<RwLock<HashMap<String, reqwest::Url>>> = LazyLock::new(Default::default);
const MAX_URLS: usize = 1024;

/// `client.post(url)`, with `url` parsed at most once. A URL that does not parse goes to reqwest
/// as text, which records the error and fails the send, as before.
pub fn post(client: &reqwest::Client, url: String) -> reqwest::RequestBuilder {
    // Every call reads the memo; a shared lock keeps the runtime's workers from queueing on it.
    let cached = URLS.read().unwrap_or_else(|p| p.into_inner()).get(&url).cloned();
    if let Some(u) = cached {
        return client.post(u);
    }
    let Ok(u) = reqwest::Url::parse(&url) else {
        return client.post(url);
    };
    let mut urls = URLS.write().unwrap_or_else(|p| p.into_inner());
    if urls.len() >= MAX_URLS {
        urls.clear();
    }
    urls.insert(url, u.clone());
    drop(urls);
    client.post(u)
}

/// Credential and version headers for a provider speaking `format`; `anthropic_version`/
/// `anthropic_beta` are the client's, when it sent them. The credential is marked sensitive so no
/// Debug print or trace of the request shows it.
pub fn auth_headers(
    req: reqwest::RequestBuilder,
    format: Format,
    api_key: &str,
    anthropic_version: Option<&str>,
    anthropic_beta: Option<&str>,
) -> reqwest::RequestBuilder {
    match format {
        Format::Anthropic => {
            let mut r = secret_header(req, "x-api-key", api_key)
                .header("anthropic-version", anthropic_version.unwrap_or("2023-06-01"));
            if let Some(b) = anthropic_beta {
                r = r.header("anthropic-beta", b);
            }
            r
        }
        Format::Gemini => secret_header(req, "x-goog-api-key", api_key),
        Format::Openai => req.bearer_auth(api_key),
    }
}

/// `name: value` with the value marked sensitive. A value that is not a valid header value is
/// handed to the builder as is, which records the error and fails the send (never a panic).
fn secret_header(req: reqwest::RequestBuilder, name: &'static str, value: &str) -> reqwest::RequestBuilder {
    match HeaderValue::from_str(value) {
        Ok(mut v) => {
            v.set_sensitive(true);
            req.header(name, v)
        }
        Err(_) => req.header(name, value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            url("https://api.openai.com/v1/", Format::Openai, "gpt-4o", true),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            url("http://x/v1", Format::Anthropic, "m", false),
            "http://x/v1/messages"
        );
        assert_eq!(
            url("http://x/v1beta", Format::Gemini, "gemini-1.5-pro", false),
            "http://x/v1beta/models/gemini-1.5-pro:generateContent"
        );
        assert_eq!(
            url("http://x/v1beta", Format::Gemini, "gemini-1.5-pro", true),
            "http://x/v1beta/models/gemini-1.5-pro:streamGenerateContent?alt=sse"
        );
    }

    #[test]
    fn posts_reuse_parsed_urls() {
        let c = reqwest::Client::new();
        let url = "http://127.0.0.1:9/v1/chat/completions".to_string();
        for _ in 0..2 {
            let r = post(&c, url.clone()).build().unwrap();
            assert_eq!(r.url().as_str(), url);
        }
        assert!(URLS.read().unwrap().contains_key(&url));
        // Not a URL: the send fails as it did without the memo, and nothing is kept.
        assert!(post(&c, "not a url".into()).build().is_err());
        assert!(!URLS.read().unwrap().contains_key("not a url"));
    }

    #[test]
    fn credentials_are_sensitive() {
        let c = reqwest::Client::new();
        let build = |f| {
            auth_headers(c.post("http://x/"), f, "sk-secret", None, None)
                .build()
                .unwrap()
        };
        let r = build(Format::Anthropic);
        let v = r.headers().get("x-api-key").unwrap();
        assert!(v.is_sensitive());
        assert_eq!(v, "sk-secret");
        assert_eq!(r.headers().get("anthropic-version").unwrap(), "2023-06-01");
        assert!(!format!("{:?}", r.headers()).contains("sk-secret"));
        let r = build(Format::Gemini);
        assert!(r.headers().get("x-goog-api-key").unwrap().is_sensitive());
        assert!(!format!("{:?}", r.headers()).contains("sk-secret"));
        let r = build(Format::Openai);
        assert!(r.headers().get("authorization").unwrap().is_sensitive());
        // An invalid value fails the request instead of panicking.
        assert!(
            auth_headers(c.post("http://x/"), Format::Gemini, "bad\nkey", None, None)
                .build()
                .is_err()
        );
    }
}
