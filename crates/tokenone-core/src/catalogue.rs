//! The catalogue of delivery paths (setting `routing.catalogue`) and how a requested model finds
//! its native path: the cheapest enabled path whose `publicModel` equals it, else a path inferred
//! from the id for models that only match a tier-map pattern.

use crate::tiers::{Tier, TierMap};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Wire format a path speaks upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Openai,
    Anthropic,
    Gemini,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Openai => "openai",
            Format::Anthropic => "anthropic",
            Format::Gemini => "gemini",
        }
    }
}

/// Upstream vendors TokenOne can deliver through.
pub const PROVIDERS: [&str; 5] = ["openai", "anthropic", "gemini", "fireworks", "openrouter"];

pub fn provider_format(provider: &str) -> Format {
    match provider {
        "anthropic" => Format::Anthropic,
        "gemini" => Format::Gemini,
        _ => Format::Openai,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Path {
    pub id: String,
    pub provider: String,
    pub public_model: String,
    pub upstream_model: String,
    pub tier: Tier,
    pub format: Format,
    /// USD per million model tokens.
    #[serde(with = "rust_decimal::serde::str")]
    pub input_usd_per_m_tok: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub output_usd_per_m_tok: Decimal,
    #[serde(
        default,
        with = "rust_decimal::serde::str_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub cached_input_usd_per_m_tok: Option<Decimal>,
    pub vision: bool,
    pub tools: bool,
    pub enabled: bool,
}

fn d(s: &str) -> Decimal {
    // Literals below are valid decimals.
    Decimal::from_str(s).expect("decimal literal")
}

#[allow(clippy::too_many_arguments)]
fn path(provider: &str, public: &str, upstream: &str, tier: Tier, input: &str, output: &str, vision: bool) -> Path {
    Path {
        id: format!("{provider}:{public}"),
        provider: provider.into(),
        public_model: public.into(),
        upstream_model: upstream.into(),
        tier,
        format: provider_format(provider),
        input_usd_per_m_tok: d(input),
        output_usd_per_m_tok: d(output),
        cached_input_usd_per_m_tok: None,
        vision,
        tools: true,
        enabled: true,
    }
}

/// The seeded catalogue of economics.md.
pub fn default_catalogue() -> Vec<Path> {
    use Tier::*;
    let fw = "accounts/fireworks/models/";
    vec![
        path("anthropic", "claude-opus-4", "claude-opus-4", Heavy, "15", "75", true),
        path(
            "anthropic",
            "claude-sonnet-4",
            "claude-sonnet-4",
            Balanced,
            "3",
            "15",
            true,
        ),
        path(
            "anthropic",
            "claude-3-5-haiku",
            "claude-3-5-haiku",
            Cheap,
            "0.8",
            "4",
            true,
        ),
        path("openai", "o1", "o1", Heavy, "15", "60", true),
        path("openai", "gpt-4o", "gpt-4o", Balanced, "2.5", "10", true),
        path("openai", "gpt-4o-mini", "gpt-4o-mini", Cheap, "0.15", "0.6", true),
        path(
            "gemini",
            "gemini-1.5-pro",
            "gemini-1.5-pro",
            Balanced,
            "1.25",
            "5",
            true,
        ),
        path(
            "gemini",
            "gemini-1.5-flash",
            "gemini-1.5-flash",
            Cheap,
            "0.075",
            "0.3",
            true,
        ),
        path(
            "fireworks",
            "llama-3.1-405b-instruct",
            &format!("{fw}llama-v3p1-405b-instruct"),
            Heavy,
            "3",
            "3",
            false,
        ),
        path(
            "fireworks",
            "llama-3.1-70b-instruct",
            &format!("{fw}llama-v3p1-70b-instruct"),
            Balanced,
            "0.9",
            "0.9",
            false,
        ),
        path(
            "fireworks",
            "llama-3.1-8b-instruct",
            &format!("{fw}llama-v3p1-8b-instruct"),
            Cheap,
            "0.2",
            "0.2",
            false,
        ),
        path(
            "fireworks",
            "deepseek-r1",
            &format!("{fw}deepseek-r1"),
            Heavy,
            "3",
            "8",
            false,
        ),
        path(
            "fireworks",
            "deepseek-v3",
            &format!("{fw}deepseek-v3"),
            Balanced,
            "0.9",
            "0.9",
            false,
        ),
        path(
            "openrouter",
            "llama-3.1-8b-instruct",
            "meta-llama/llama-3.1-8b-instruct",
            Cheap,
            "0.05",
            "0.08",
            false,
        ),
        path(
            "openrouter",
            "deepseek-v3",
            "deepseek/deepseek-chat",
            Balanced,
            "0.5",
            "1.5",
            false,
        ),
    ]
}

/// Checks an admin-supplied catalogue: unique ids, known providers, the format each provider
/// speaks, non-negative prices.
pub fn validate_catalogue(paths: &[Path]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for p in paths {
        if !seen.insert(p.id.as_str()) {
            return Err(format!("duplicate path id `{}`", p.id));
        }
        if !PROVIDERS.contains(&p.provider.as_str()) {
            return Err(format!("path `{}`: unknown provider `{}`", p.id, p.provider));
        }
        if provider_format(&p.provider) != p.format {
            return Err(format!(
                "path `{}`: provider {} speaks {}",
                p.id,
                p.provider,
                provider_format(&p.provider).as_str()
            ));
        }
        let prices = [
            Some(p.input_usd_per_m_tok),
            Some(p.output_usd_per_m_tok),
            p.cached_input_usd_per_m_tok,
        ];
        if prices.iter().flatten().any(|d| d.is_sign_negative()) {
            return Err(format!("path `{}`: prices must be >= 0", p.id));
        }
        if p.public_model.is_empty() || p.upstream_model.is_empty() {
            return Err(format!("path `{}`: models must not be empty", p.id));
        }
    }
    Ok(())
}

/// The vendor a model id belongs to when only a tier-map pattern knows it.
pub fn infer_provider(model: &str) -> &'static str {
    if model.starts_with("claude-") {
        "anthropic"
    } else if ["gpt-", "o1", "o3", "o4"].iter().any(|p| model.starts_with(p)) {
        "openai"
    } else if model.starts_with("gemini-") {
        "gemini"
    } else {
        "fireworks"
    }
}

/// Why a model has no deliverable native path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoPath {
    /// Neither the catalogue nor the tier map knows the model (404 `model_not_found`).
    UnknownModel,
    /// Known, but every provider that could deliver it lacks a credential (503).
    Unconfigured,
}

/// A requested model resolved to the path that delivers it natively, with its tier.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub path: Path,
    /// The requested model's tier (from the tier map, else the path's own).
    pub requested_tier: Tier,
    /// True when the path was inferred from the id (pattern-matched model, priced at its tier's
    /// benchmark ceiling).
    pub inferred: bool,
}

/// The native path of `model`. `configured(provider)` says whether a provider has a credential;
/// sandbox (dev) calls pass `|_| true`, since they never reach a provider.
pub fn native_path(
    catalogue: &[Path],
    tiers: &TierMap,
    model: &str,
    configured: impl Fn(&str) -> bool,
) -> Result<Resolved, NoPath> {
    let mut candidates: Vec<&Path> = catalogue
        .iter()
        .filter(|p| p.enabled && p.public_model == model)
        .collect();
    let known = !candidates.is_empty();
    candidates.retain(|p| configured(&p.provider));
    candidates.sort_by(|a, b| {
        (a.input_usd_per_m_tok + a.output_usd_per_m_tok)
            .cmp(&(b.input_usd_per_m_tok + b.output_usd_per_m_tok))
            .then_with(|| a.id.cmp(&b.id))
    });
    if let Some(p) = candidates.first() {
        let requested_tier = tiers.tier_of(model).unwrap_or(p.tier);
        return Ok(Resolved {
            path: (*p).clone(),
            requested_tier,
            inferred: false,
        });
    }
    if known {
        return Err(NoPath::Unconfigured);
    }
    let Some(tier) = tiers.tier_of(model) else {
        return Err(NoPath::UnknownModel);
    };
    let provider = infer_provider(model);
    if !configured(provider) {
        return Err(NoPath::Unconfigured);
    }
    Ok(Resolved {
        path: Path {
            id: format!("{provider}:{model}"),
            provider: provider.into(),
            public_model: model.into(),
            upstream_model: model.into(),
            tier,
            format: provider_format(provider),
            // Priced at the tier's benchmark ceiling by the settlement (economics).
            input_usd_per_m_tok: Decimal::ZERO,
            output_usd_per_m_tok: Decimal::ZERO,
            cached_input_usd_per_m_tok: None,
            vision: provider != "fireworks",
            tools: true,
            enabled: true,
        },
        requested_tier: tier,
        inferred: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_catalogue_is_valid_and_round_trips() {
        let c = default_catalogue();
        assert_eq!(c.len(), 15);
        validate_catalogue(&c).unwrap();
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json[0]["inputUsdPerMTok"], "15");
        assert_eq!(json[13]["upstreamModel"], "meta-llama/llama-3.1-8b-instruct");
        let back: Vec<Path> = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn native_paths() {
        let c = default_catalogue();
        let t = TierMap::default();
        let all = |_: &str| true;
        let r = native_path(&c, &t, "claude-sonnet-4", all).unwrap();
        assert_eq!(
            (r.path.id.as_str(), r.requested_tier, r.inferred),
            ("anthropic:claude-sonnet-4", Tier::Balanced, false)
        );
        // Two paths deliver llama-3.1-8b: the cheaper (openrouter) wins.
        assert_eq!(
            native_path(&c, &t, "llama-3.1-8b-instruct", all).unwrap().path.id,
            "openrouter:llama-3.1-8b-instruct"
        );
        // ... unless openrouter has no credential.
        let no_or = |p: &str| p != "openrouter";
        assert_eq!(
            native_path(&c, &t, "llama-3.1-8b-instruct", no_or).unwrap().path.id,
            "fireworks:llama-3.1-8b-instruct"
        );
        // A dated id known only by pattern goes to its vendor, unchanged.
        let r = native_path(&c, &t, "claude-sonnet-4-20250514", all).unwrap();
        assert_eq!(
            (r.path.provider.as_str(), r.path.upstream_model.as_str(), r.inferred),
            ("anthropic", "claude-sonnet-4-20250514", true)
        );
        assert_eq!(native_path(&c, &t, "o3-mini", all).unwrap().path.provider, "openai");
        assert_eq!(
            native_path(&c, &t, "gemini-2.0-flash", all).unwrap().path.format,
            Format::Gemini
        );
        assert_eq!(
            native_path(&c, &t, "llama-3.3-70b", all).unwrap().path.provider,
            "fireworks"
        );
        assert_eq!(native_path(&c, &t, "mistral-large", all), Err(NoPath::UnknownModel));
        assert_eq!(native_path(&c, &t, "gpt-4o", |_| false), Err(NoPath::Unconfigured));
        assert_eq!(
            native_path(&c, &t, "gpt-4o-2024-08-06", |_| false),
            Err(NoPath::Unconfigured)
        );
    }

    #[test]
    fn catalogue_validation() {
        let mut c = default_catalogue();
        c[1].id = c[0].id.clone();
        assert!(validate_catalogue(&c).unwrap_err().contains("duplicate"));
        let mut c = default_catalogue();
        c[0].format = Format::Openai;
        assert!(validate_catalogue(&c).is_err());
        let mut c = default_catalogue();
        c[0].input_usd_per_m_tok = Decimal::from(-1);
        assert!(validate_catalogue(&c).is_err());
    }
}
