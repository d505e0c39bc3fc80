//! The five commercial levers (economics.md, "Commercial levers"): their typed form, defaults,
//! validation, and the canonical JSON they are stored and returned as (numbers as decimal strings).

use crate::tiers::{Tier, TierMap};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use std::borrow::Borrow;
use std::collections::BTreeMap;

pub const TOKEN_USD_RATE: &str = "token_usd_rate";
pub const PASS_BACK_RATIO: &str = "pass_back_ratio";
pub const BENCHMARK_CEILINGS: &str = "benchmark_ceilings";
pub const UPSTREAM_MARKUP_PCT: &str = "upstream_markup_pct";
pub const MODEL_TIER_MAP: &str = "model_tier_map";

/// The lever names, in the order the admin API lists them.
pub const LEVER_NAMES: [&str; 5] = [
    TOKEN_USD_RATE,
    PASS_BACK_RATIO,
    BENCHMARK_CEILINGS,
    UPSTREAM_MARKUP_PCT,
    MODEL_TIER_MAP,
];

/// What a lever does, as `GET /admin/commercial-levers` shows it; `None` for an unknown name.
pub fn lever_description(name: &str) -> Option<&'static str> {
    Some(match name {
        TOKEN_USD_RATE => {
            "USD per wallet token: topUpUsdPerToken converts top-ups paid in USD into tokens; \
             costBasisUsdPerToken converts what a call costs in USD into tokens burned. Both > 0."
        }
        PASS_BACK_RATIO => "Share (0..=1) of a call's savings against its benchmark credited back to the wallet.",
        BENCHMARK_CEILINGS => {
            "USD per million model tokens (input and output) that a call on each tier would have cost: \
             the baseline that burn and savings are measured against. All three tiers, both fields, >= 0."
        }
        UPSTREAM_MARKUP_PCT => {
            "Markup on what the upstream charges, as a fraction (0.1 = 10%): upstreamUsd is multiplied \
             by (1 + markup). 0..=10."
        }
        MODEL_TIER_MAP => {
            "Model id or `*` glob -> capability tier (heavy, balanced, cheap); an exact id wins over \
             patterns, the longest pattern over shorter ones."
        }
        _ => return None,
    })
}

/// Lever `token_usd_rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenUsdRate {
    /// USD a customer pays for one wallet token (top-ups).
    pub topup_usd_per_token: Decimal,
    /// USD of upstream or benchmark cost that one burned wallet token stands for (settlement).
    pub cost_basis_usd_per_token: Decimal,
}

/// USD per million model tokens on one tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ceiling {
    pub input: Decimal,
    pub output: Decimal,
}

/// Lever `benchmark_ceilings`: what a call would have cost on each tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchmarkCeilings {
    pub heavy: Ceiling,
    pub balanced: Ceiling,
    pub cheap: Ceiling,
}

impl BenchmarkCeilings {
    pub fn get(&self, tier: Tier) -> Ceiling {
        match tier {
            Tier::Heavy => self.heavy,
            Tier::Balanced => self.balanced,
            Tier::Cheap => self.cheap,
        }
    }
}

/// All five levers, as the settlement reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Levers {
    pub token_usd_rate: TokenUsdRate,
    /// 0..=1.
    pub pass_back_ratio: Decimal,
    pub benchmark_ceilings: BenchmarkCeilings,
    /// A fraction despite the name (the spec's default `0.1` means 10%); 0..=10.
    pub upstream_markup_pct: Decimal,
    pub model_tier_map: TierMap,
}

/// `mantissa * 10^-scale`, usable in constants.
const fn dec(mantissa: u32, scale: u32) -> Decimal {
    Decimal::from_parts(mantissa, 0, 0, false, scale)
}

impl Default for TokenUsdRate {
    fn default() -> Self {
        TokenUsdRate {
            topup_usd_per_token: dec(1, 6),
            cost_basis_usd_per_token: dec(1, 6),
        }
    }
}

impl Default for BenchmarkCeilings {
    fn default() -> Self {
        BenchmarkCeilings {
            heavy: Ceiling {
                input: dec(15, 0),
                output: dec(75, 0),
            },
            balanced: Ceiling {
                input: dec(3, 0),
                output: dec(15, 0),
            },
            cheap: Ceiling {
                input: dec(8, 1),
                output: dec(4, 0),
            },
        }
    }
}

impl Default for Levers {
    /// The seeded values of economics.md.
    fn default() -> Self {
        Levers {
            token_usd_rate: TokenUsdRate::default(),
            pass_back_ratio: dec(6, 1),
            benchmark_ceilings: BenchmarkCeilings::default(),
            upstream_markup_pct: dec(1, 1),
            model_tier_map: TierMap::default(),
        }
    }
}

impl Levers {
    /// Levers from their stored values (name -> canonical JSON). A lever with no stored value keeps
    /// its default; an unknown name or an invalid value is an error (the store holds only values
    /// that passed [`parse_lever`]).
    pub fn from_stored<I, K, V>(stored: I) -> Result<Levers, String>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Borrow<Value>,
    {
        let mut levers = Levers::default();
        for (name, value) in stored {
            let value = value.borrow();
            match name.as_ref() {
                TOKEN_USD_RATE => levers.token_usd_rate = token_usd_rate(value)?,
                PASS_BACK_RATIO => levers.pass_back_ratio = pass_back_ratio(value)?,
                BENCHMARK_CEILINGS => levers.benchmark_ceilings = benchmark_ceilings(value)?,
                UPSTREAM_MARKUP_PCT => levers.upstream_markup_pct = upstream_markup_pct(value)?,
                MODEL_TIER_MAP => levers.model_tier_map = model_tier_map(value)?,
                other => return Err(unknown(other)),
            }
        }
        Ok(levers)
    }

    /// The canonical stored form of one lever; `None` for an unknown name.
    pub fn value(&self, name: &str) -> Option<Value> {
        Some(match name {
            TOKEN_USD_RATE => {
                let r = &self.token_usd_rate;
                let mut m = Map::new();
                m.insert("topupUsdPerToken".into(), dec_value(r.topup_usd_per_token));
                m.insert("costBasisUsdPerToken".into(), dec_value(r.cost_basis_usd_per_token));
                Value::Object(m)
            }
            PASS_BACK_RATIO => dec_value(self.pass_back_ratio),
            BENCHMARK_CEILINGS => {
                let mut m = Map::new();
                for tier in Tier::ALL {
                    let c = self.benchmark_ceilings.get(tier);
                    let mut inner = Map::new();
                    inner.insert("input".into(), dec_value(c.input));
                    inner.insert("output".into(), dec_value(c.output));
                    m.insert(tier.as_str().into(), Value::Object(inner));
                }
                Value::Object(m)
            }
            UPSTREAM_MARKUP_PCT => dec_value(self.upstream_markup_pct),
            MODEL_TIER_MAP => Value::Object(
                self.model_tier_map
                    .0
                    .iter()
                    .map(|(k, t)| (k.clone(), Value::String(t.as_str().into())))
                    .collect(),
            ),
            _ => return None,
        })
    }

    /// Every lever in its canonical stored form (what a fresh database is seeded with).
    pub fn to_stored(&self) -> BTreeMap<String, Value> {
        LEVER_NAMES
            .iter()
            .filter_map(|name| self.value(name).map(|v| (name.to_string(), v)))
            .collect()
    }
}

/// Validates a new value for lever `name` and returns its canonical stored form: JSON numbers
/// become decimal strings, trailing zeros are dropped (`"0.60"` -> `"0.6"`), objects must have
/// exactly the documented keys.
pub fn parse_lever(name: &str, value: &Value) -> Result<Value, String> {
    let mut levers = Levers::default();
    match name {
        TOKEN_USD_RATE => levers.token_usd_rate = token_usd_rate(value)?,
        PASS_BACK_RATIO => levers.pass_back_ratio = pass_back_ratio(value)?,
        BENCHMARK_CEILINGS => levers.benchmark_ceilings = benchmark_ceilings(value)?,
        UPSTREAM_MARKUP_PCT => levers.upstream_markup_pct = upstream_markup_pct(value)?,
        MODEL_TIER_MAP => levers.model_tier_map = model_tier_map(value)?,
        other => return Err(unknown(other)),
    }
    levers.value(name).ok_or_else(|| unknown(name))
}

fn unknown(name: &str) -> String {
    format!("unknown lever `{name}`")
}

fn dec_value(d: Decimal) -> Value {
    Value::String(d.normalize().to_string())
}

/// A decimal from a JSON number or a plain decimal string (`-?digits(.digits)?`), exactly: a
/// value that needs more than 28 decimal places, or is out of range, is refused rather than
/// rounded. A JSON number with a fraction arrives as the shortest text that reads back as the same
/// double (`0.1` stays `0.1`), which is what its sender wrote.
pub fn parse_decimal(value: &Value) -> Result<Decimal, String> {
    match value {
        Value::String(s) => {
            let body = s.strip_prefix('-').unwrap_or(s);
            let (int, frac) = match body.split_once('.') {
                Some((int, frac)) => (int, Some(frac)),
                None => (body, None),
            };
            let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
            if !digits(int) || frac.is_some_and(|f| !digits(f)) {
                return Err(format!("`{s}` is not a decimal number"));
            }
            Decimal::from_str_exact(s).map_err(|_| format!("`{s}` is out of range or too precise"))
        }
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                return Ok(Decimal::from(u));
            }
            if let Some(i) = n.as_i64() {
                return Ok(Decimal::from(i));
            }
            let text = n.to_string();
            let parsed = if text.contains(['e', 'E']) {
                Decimal::from_scientific(&text)
            } else {
                Decimal::from_str_exact(&text)
            };
            parsed.map_err(|_| format!("{text} is out of range or too precise"))
        }
        _ => Err("expected a number or a decimal string".into()),
    }
}

fn field<'a>(obj: &'a Map<String, Value>, key: &str, what: &str) -> Result<&'a Value, String> {
    obj.get(key).ok_or_else(|| format!("{what}: `{key}` is required"))
}

fn object<'a>(value: &'a Value, keys: &[&str], what: &str) -> Result<&'a Map<String, Value>, String> {
    let Value::Object(obj) = value else {
        return Err(format!("{what}: expected an object"));
    };
    if let Some(extra) = obj.keys().find(|k| !keys.contains(&k.as_str())) {
        return Err(format!("{what}: unknown field `{extra}`"));
    }
    Ok(obj)
}

fn ranged(value: &Value, what: &str, ok: impl Fn(Decimal) -> bool, rule: &str) -> Result<Decimal, String> {
    let d = parse_decimal(value).map_err(|e| format!("{what}: {e}"))?;
    if ok(d) {
        Ok(d)
    } else {
        Err(format!("{what}: must be {rule}"))
    }
}

fn token_usd_rate(value: &Value) -> Result<TokenUsdRate, String> {
    let obj = object(value, &["topupUsdPerToken", "costBasisUsdPerToken"], TOKEN_USD_RATE)?;
    let positive = |key: &str| {
        ranged(
            field(obj, key, TOKEN_USD_RATE)?,
            &format!("{TOKEN_USD_RATE}.{key}"),
            |d| d > Decimal::ZERO,
            "> 0",
        )
    };
    Ok(TokenUsdRate {
        topup_usd_per_token: positive("topupUsdPerToken")?,
        cost_basis_usd_per_token: positive("costBasisUsdPerToken")?,
    })
}

fn pass_back_ratio(value: &Value) -> Result<Decimal, String> {
    ranged(
        value,
        PASS_BACK_RATIO,
        |d| d >= Decimal::ZERO && d <= Decimal::ONE,
        "between 0 and 1",
    )
}

fn upstream_markup_pct(value: &Value) -> Result<Decimal, String> {
    ranged(
        value,
        UPSTREAM_MARKUP_PCT,
        |d| d >= Decimal::ZERO && d <= Decimal::TEN,
        "between 0 and 10",
    )
}

fn benchmark_ceilings(value: &Value) -> Result<BenchmarkCeilings, String> {
    let obj = object(value, &["heavy", "balanced", "cheap"], BENCHMARK_CEILINGS)?;
    let tier = |name: &str| -> Result<Ceiling, String> {
        let what = format!("{BENCHMARK_CEILINGS}.{name}");
        let inner = object(field(obj, name, BENCHMARK_CEILINGS)?, &["input", "output"], &what)?;
        let price = |key: &str| {
            ranged(
                field(inner, key, &what)?,
                &format!("{what}.{key}"),
                |d| d >= Decimal::ZERO,
                ">= 0",
            )
        };
        Ok(Ceiling {
            input: price("input")?,
            output: price("output")?,
        })
    };
    Ok(BenchmarkCeilings {
        heavy: tier("heavy")?,
        balanced: tier("balanced")?,
        cheap: tier("cheap")?,
    })
}

fn model_tier_map(value: &Value) -> Result<TierMap, String> {
    let Value::Object(obj) = value else {
        return Err(format!(
            "{MODEL_TIER_MAP}: expected an object of model id or pattern -> tier"
        ));
    };
    if obj.is_empty() {
        return Err(format!("{MODEL_TIER_MAP}: must map at least one model"));
    }
    let mut map = BTreeMap::new();
    for (key, tier) in obj {
        if key.trim().is_empty() {
            return Err(format!("{MODEL_TIER_MAP}: model ids must not be empty"));
        }
        let tier = tier
            .as_str()
            .ok_or_else(|| format!("{MODEL_TIER_MAP}.{key}: expected a tier name"))?
            .parse::<Tier>()
            .map_err(|e| format!("{MODEL_TIER_MAP}.{key}: {e}"))?;
        map.insert(key.clone(), tier);
    }
    Ok(TierMap(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn defaults_are_the_seeded_values() {
        let stored = Levers::default().to_stored();
        assert_eq!(stored.len(), 5);
        assert_eq!(
            stored[TOKEN_USD_RATE],
            json!({"topupUsdPerToken":"0.000001","costBasisUsdPerToken":"0.000001"})
        );
        assert_eq!(stored[PASS_BACK_RATIO], json!("0.6"));
        assert_eq!(
            stored[BENCHMARK_CEILINGS],
            json!({"heavy":{"input":"15","output":"75"},"balanced":{"input":"3","output":"15"},"cheap":{"input":"0.8","output":"4"}})
        );
        assert_eq!(stored[UPSTREAM_MARKUP_PCT], json!("0.1"));
        assert_eq!(stored[MODEL_TIER_MAP]["claude-opus-*"], json!("heavy"));
        assert_eq!(stored[MODEL_TIER_MAP]["gpt-4o-mini*"], json!("cheap"));
        // The stored form reads back as the defaults.
        assert_eq!(Levers::from_stored(&stored).unwrap(), Levers::default());
        assert_eq!(
            Levers::from_stored(BTreeMap::<String, Value>::new()).unwrap(),
            Levers::default()
        );
    }

    #[test]
    fn every_lever_has_a_description() {
        for name in LEVER_NAMES {
            assert!(lever_description(name).is_some(), "{name}");
            assert!(Levers::default().value(name).is_some(), "{name}");
        }
        assert_eq!(lever_description("nope"), None);
        assert_eq!(Levers::default().value("nope"), None);
    }

    #[test]
    fn numbers_and_strings_normalise_to_decimal_strings() {
        let cases = [
            (PASS_BACK_RATIO, json!(0.6), json!("0.6")),
            (PASS_BACK_RATIO, json!("0.60"), json!("0.6")),
            (PASS_BACK_RATIO, json!(1), json!("1")),
            (PASS_BACK_RATIO, json!("0"), json!("0")),
            (PASS_BACK_RATIO, json!("-0"), json!("0")),
            (UPSTREAM_MARKUP_PCT, json!(0.1), json!("0.1")),
            (UPSTREAM_MARKUP_PCT, json!("10.000"), json!("10")),
            (
                TOKEN_USD_RATE,
                json!({"topupUsdPerToken": 0.000001, "costBasisUsdPerToken": "0.0000005"}),
                json!({"topupUsdPerToken": "0.000001", "costBasisUsdPerToken": "0.0000005"}),
            ),
            (
                TOKEN_USD_RATE,
                json!({"topupUsdPerToken": 2e-7, "costBasisUsdPerToken": 1}),
                json!({"topupUsdPerToken": "0.0000002", "costBasisUsdPerToken": "1"}),
            ),
            (
                BENCHMARK_CEILINGS,
                json!({"heavy":{"input":15,"output":"75.0"},"balanced":{"input":3.5,"output":"15"},"cheap":{"input":"0","output":0}}),
                json!({"heavy":{"input":"15","output":"75"},"balanced":{"input":"3.5","output":"15"},"cheap":{"input":"0","output":"0"}}),
            ),
            (
                MODEL_TIER_MAP,
                json!({"my-model": "heavy", "acme-*": "cheap"}),
                json!({"my-model": "heavy", "acme-*": "cheap"}),
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(parse_lever(name, &input).unwrap(), want, "{name} {input}");
            // The canonical form is a fixed point.
            assert_eq!(parse_lever(name, &want).unwrap(), want, "{name} {want}");
        }
    }

    #[test]
    fn invalid_values_are_refused() {
        let cases = [
            ("nope", json!("1")),
            (PASS_BACK_RATIO, json!("1.01")),
            (PASS_BACK_RATIO, json!(-0.1)),
            (PASS_BACK_RATIO, json!("abc")),
            (PASS_BACK_RATIO, json!("")),
            (PASS_BACK_RATIO, json!(" 0.5")),
            (PASS_BACK_RATIO, json!("0.5 ")),
            (PASS_BACK_RATIO, json!("1e-1")),
            (PASS_BACK_RATIO, json!("+0.5")),
            (PASS_BACK_RATIO, json!(".5")),
            (PASS_BACK_RATIO, json!("5.")),
            (PASS_BACK_RATIO, json!("0_5")),
            (PASS_BACK_RATIO, json!("NaN")),
            (PASS_BACK_RATIO, json!("0.00000000000000000000000000001")), // 29 places
            (PASS_BACK_RATIO, json!(null)),
            (PASS_BACK_RATIO, json!(true)),
            (PASS_BACK_RATIO, json!({"value": "0.5"})),
            (UPSTREAM_MARKUP_PCT, json!(10.5)),
            (UPSTREAM_MARKUP_PCT, json!("-1")),
            (UPSTREAM_MARKUP_PCT, json!(1e300)),
            (
                TOKEN_USD_RATE,
                json!({"topupUsdPerToken": "0", "costBasisUsdPerToken": "1"}),
            ),
            (
                TOKEN_USD_RATE,
                json!({"topupUsdPerToken": "1", "costBasisUsdPerToken": "-1"}),
            ),
            (TOKEN_USD_RATE, json!({"topupUsdPerToken": "1"})),
            (
                TOKEN_USD_RATE,
                json!({"topupUsdPerToken": "1", "costBasisUsdPerToken": "1", "extra": "1"}),
            ),
            (TOKEN_USD_RATE, json!("0.000001")),
            (
                BENCHMARK_CEILINGS,
                json!({"heavy":{"input":"15","output":"75"},"balanced":{"input":"3","output":"15"}}),
            ),
            (
                BENCHMARK_CEILINGS,
                json!({"heavy":{"input":"15"},"balanced":{"input":"3","output":"15"},"cheap":{"input":"0.8","output":"4"}}),
            ),
            (
                BENCHMARK_CEILINGS,
                json!({"heavy":{"input":"-15","output":"75"},"balanced":{"input":"3","output":"15"},"cheap":{"input":"0.8","output":"4"}}),
            ),
            (
                BENCHMARK_CEILINGS,
                json!({"heavy":{"input":"15","output":"75","cached":"1"},"balanced":{"input":"3","output":"15"},"cheap":{"input":"0.8","output":"4"}}),
            ),
            (
                BENCHMARK_CEILINGS,
                json!({"heavy":{"input":"15","output":"75"},"balanced":{"input":"3","output":"15"},"cheap":{"input":"0.8","output":"4"},"ultra":{"input":"1","output":"1"}}),
            ),
            (MODEL_TIER_MAP, json!({"gpt-4o": "premium"})),
            (MODEL_TIER_MAP, json!({"gpt-4o": 1})),
            (MODEL_TIER_MAP, json!({"": "cheap"})),
            (MODEL_TIER_MAP, json!({})),
            (MODEL_TIER_MAP, json!(["gpt-4o"])),
        ];
        for (name, input) in cases {
            assert!(parse_lever(name, &input).is_err(), "{name} {input} was accepted");
        }
        assert_eq!(parse_lever("nope", &json!(1)).unwrap_err(), "unknown lever `nope`");
        assert!(parse_lever(PASS_BACK_RATIO, &json!("2"))
            .unwrap_err()
            .contains("between 0 and 1"));
    }

    #[test]
    fn from_stored_reads_overrides_and_refuses_unknown_names() {
        let stored = BTreeMap::from([
            (PASS_BACK_RATIO.to_string(), json!("0.25")),
            (UPSTREAM_MARKUP_PCT.to_string(), json!("0")),
        ]);
        let levers = Levers::from_stored(&stored).unwrap();
        assert_eq!(levers.pass_back_ratio, d("0.25"));
        assert_eq!(levers.upstream_markup_pct, Decimal::ZERO);
        assert_eq!(levers.token_usd_rate, TokenUsdRate::default());
        let bad = [("surprise", json!("1"))];
        assert!(Levers::from_stored(bad).is_err());
        let bad = [(PASS_BACK_RATIO, json!("7"))];
        assert!(Levers::from_stored(bad).is_err());
    }

    #[test]
    fn exact_decimals() {
        assert_eq!(parse_decimal(&json!("0.1")).unwrap(), d("0.1"));
        assert_eq!(parse_decimal(&json!(0.1)).unwrap(), d("0.1"));
        assert_eq!(parse_decimal(&json!(1e-6)).unwrap(), d("0.000001"));
        assert_eq!(parse_decimal(&json!(u64::MAX)).unwrap(), Decimal::from(u64::MAX));
        assert_eq!(parse_decimal(&json!(-3)).unwrap(), Decimal::from(-3));
        assert_eq!(
            parse_decimal(&json!("79228162514264337593543950335")).unwrap(),
            Decimal::MAX
        );
        assert!(parse_decimal(&json!("79228162514264337593543950336")).is_err());
    }
}
