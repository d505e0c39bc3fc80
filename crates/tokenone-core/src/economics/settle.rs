//! What a call costs (economics.md, "Settling a call — the formulas"): upstream and baseline USD,
//! burn, savings, pass-back and net wallet tokens, the reservation taken before delivery, and the
//! tokens a USD top-up buys. Exact decimal arithmetic only.

use super::levers::Levers;
use super::MAX_TOKENS;
use crate::catalogue::Path;
use crate::tiers::Tier;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

const MILLION: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// Model tokens a call used, as the upstream reported them. `cached_input` is part of `input`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input: u64,
    pub cached_input: u64,
    pub output: u64,
}

/// The figures of one settled call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// What the delivery path charged, with the markup.
    pub upstream_usd: Decimal,
    /// What the call would have cost at the requested tier's benchmark ceiling.
    pub baseline_usd: Decimal,
    /// Debited from the wallet.
    pub burn_tokens: u64,
    pub savings_tokens: u64,
    /// Credited back to the wallet.
    pub pass_back_tokens: u64,
    /// The figures did not fit (absurd usage or levers): burn is [`MAX_TOKENS`], savings and
    /// pass-back are zero, and any USD figure that overflowed is `Decimal::MAX`. Worth an alert.
    pub saturated: bool,
}

impl Settlement {
    /// `burn_tokens - pass_back_tokens`: never negative (pass-back <= savings <= burn), signed
    /// like the database columns (burn <= [`MAX_TOKENS`] = `i64::MAX`).
    pub fn net_tokens(&self) -> i64 {
        i64::try_from(self.burn_tokens.saturating_sub(self.pass_back_tokens)).unwrap_or(i64::MAX)
    }
}

/// Sum of `count * USD per million` over `parts`, in USD; `None` on overflow. A negative price
/// (which validation refuses) counts as zero, so no figure is ever negative.
fn usd(parts: &[(u64, Decimal)]) -> Option<Decimal> {
    let mut sum = Decimal::ZERO;
    for &(count, price) in parts {
        sum = sum.checked_add(Decimal::from(count).checked_mul(price.max(Decimal::ZERO))?)?;
    }
    Some(sum.checked_div(MILLION)?.normalize())
}

/// `baselineUsd`: input and output at the benchmark ceiling of `tier` (cached input included, at
/// the full input price: the ceilings have no cached price). `None` on overflow.
pub fn baseline_usd(input: u64, output: u64, tier: Tier, levers: &Levers) -> Option<Decimal> {
    let ceiling = levers.benchmark_ceilings.get(tier);
    usd(&[(input, ceiling.input), (output, ceiling.output)])
}

/// `upstreamUsd`: uncached input, cached input and output at the path's prices, times
/// `1 + upstream_markup_pct`. Cached input is priced at the path's cached price when it has one,
/// else at its input price; cached tokens beyond `input` count as `input`. A path priced at the
/// ceiling (one inferred from a pattern-matched model id, which has no catalogue prices) uses the
/// benchmark ceiling of its own tier. `None` on overflow.
pub fn upstream_usd(usage: Usage, path: &Path, priced_at_ceiling: bool, levers: &Levers) -> Option<Decimal> {
    let (input, cached, output) = if priced_at_ceiling {
        let c = levers.benchmark_ceilings.get(path.tier);
        (c.input, c.input, c.output)
    } else {
        let cached = path.cached_input_usd_per_m_tok.unwrap_or(path.input_usd_per_m_tok);
        (path.input_usd_per_m_tok, cached, path.output_usd_per_m_tok)
    };
    let cached_in = usage.cached_input.min(usage.input);
    let raw = usd(&[
        (usage.input - cached_in, input),
        (cached_in, cached),
        (usage.output, output),
    ])?;
    let markup = Decimal::ONE.checked_add(levers.upstream_markup_pct.max(Decimal::ZERO))?;
    Some(raw.checked_mul(markup)?.normalize())
}

/// `floor(a / b)` for `a >= 0`, `b > 0`, and whether the division was exact; `None` when the
/// quotient exceeds [`MAX_TOKENS`] or the operands are out of domain.
///
/// Decimal division rounds to 28 significant digits, so a quotient just below an integer can come
/// out as that integer. Products of an integer and `b` are exact, so the estimate is corrected by
/// comparing them with `a`.
fn div_floor(a: Decimal, b: Decimal) -> Option<(u64, bool)> {
    if a < Decimal::ZERO || b <= Decimal::ZERO {
        return None;
    }
    let limit = Decimal::from(MAX_TOKENS);
    let mut q = a.checked_div(b)?.floor();
    if q > limit + Decimal::ONE {
        return None;
    }
    while q > Decimal::ZERO && q.checked_mul(b)? > a {
        q -= Decimal::ONE;
    }
    while (q + Decimal::ONE).checked_mul(b)? <= a {
        q += Decimal::ONE;
    }
    if q > limit {
        return None;
    }
    let exact = q.checked_mul(b)? == a;
    Some((q.to_u64()?, exact))
}

/// `ceil(a / b)`, under the same rules as [`div_floor`].
fn div_ceil(a: Decimal, b: Decimal) -> Option<u64> {
    match div_floor(a, b)? {
        (q, true) => Some(q),
        (q, false) => q.checked_add(1).filter(|&c| c <= MAX_TOKENS),
    }
}

/// `(burn, savings, pass_back)` from the two USD figures.
fn tokens(upstream: Decimal, baseline: Decimal, levers: &Levers) -> Option<(u64, u64, u64)> {
    let basis = levers.token_usd_rate.cost_basis_usd_per_token;
    let burn = div_ceil(upstream.max(baseline), basis)?;
    let (savings, _) = div_floor(baseline.checked_sub(upstream)?.max(Decimal::ZERO), basis)?;
    let ratio = levers.pass_back_ratio.clamp(Decimal::ZERO, Decimal::ONE);
    let pass_back = Decimal::from(savings).checked_mul(ratio)?.floor().to_u64()?;
    Some((burn, savings, pass_back))
}

/// Settles a delivered call: `usage` on `path`, for a model of `requested_tier`. Total: figures
/// that do not fit saturate (see [`Settlement::saturated`]) rather than fail, since a delivered
/// call must settle.
pub fn price_call(
    usage: Usage,
    requested_tier: Tier,
    path: &Path,
    path_priced_at_ceiling: bool,
    levers: &Levers,
) -> Settlement {
    let upstream = upstream_usd(usage, path, path_priced_at_ceiling, levers);
    let baseline = baseline_usd(usage.input, usage.output, requested_tier, levers);
    let figures = match (upstream, baseline) {
        (Some(u), Some(b)) => tokens(u, b, levers),
        _ => None,
    };
    match figures {
        Some((burn, savings, pass_back)) => Settlement {
            upstream_usd: upstream.unwrap_or(Decimal::MAX),
            baseline_usd: baseline.unwrap_or(Decimal::MAX),
            burn_tokens: burn,
            savings_tokens: savings,
            pass_back_tokens: pass_back,
            saturated: false,
        },
        None => Settlement {
            upstream_usd: upstream.unwrap_or(Decimal::MAX),
            baseline_usd: baseline.unwrap_or(Decimal::MAX),
            burn_tokens: MAX_TOKENS,
            savings_tokens: 0,
            pass_back_tokens: 0,
            saturated: true,
        },
    }
}

/// Wallet tokens held before delivery: `ceil(baselineUsd(est_in, max_out) / costBasis)` at the
/// requested tier. Saturates at [`MAX_TOKENS`], which no wallet can cover.
pub fn reservation_tokens(est_in: u64, max_out: u64, requested_tier: Tier, levers: &Levers) -> u64 {
    baseline_usd(est_in, max_out, requested_tier, levers)
        .and_then(|b| div_ceil(b, levers.token_usd_rate.cost_basis_usd_per_token))
        .unwrap_or(MAX_TOKENS)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopupError {
    #[error("usd must be greater than zero")]
    NotPositive,
    #[error("usd buys less than one token")]
    TooSmall,
    #[error("usd buys more tokens than a wallet can hold")]
    TooLarge,
}

/// Wallet tokens bought by a top-up of `usd`: `floor(usd / topupUsdPerToken)`.
pub fn topup_tokens_for_usd(usd: Decimal, levers: &Levers) -> Result<u64, TopupError> {
    if usd <= Decimal::ZERO {
        return Err(TopupError::NotPositive);
    }
    match div_floor(usd, levers.token_usd_rate.topup_usd_per_token) {
        None => Err(TopupError::TooLarge),
        Some((0, _)) => Err(TopupError::TooSmall),
        Some((tokens, _)) => Ok(tokens),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{default_catalogue, native_path};
    use crate::tiers::TierMap;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn path(id: &str) -> Path {
        default_catalogue().into_iter().find(|p| p.id == id).unwrap()
    }

    const EXAMPLE: Usage = Usage {
        input: 1000,
        cached_input: 0,
        output: 500,
    };

    /// The worked examples of economics.md, with default levers.
    #[test]
    fn worked_examples() {
        let levers = Levers::default();
        #[rustfmt::skip]
        let table = [
            ("claude-sonnet-4", "fireworks:llama-3.1-8b-instruct", "0.00033", "0.0105", 10500, 10170, 6102, 4398),
            ("gpt-4o", "openai:gpt-4o", "0.00825", "0.0105", 10500, 2250, 1350, 9150),
            ("claude-opus-4", "anthropic:claude-opus-4", "0.05775", "0.0525", 57750, 0, 0, 57750),
        ];
        let tiers = TierMap::default();
        for (requested, delivered, upstream, baseline, burn, savings, pass_back, net) in table {
            let tier = tiers.tier_of(requested).unwrap();
            let s = price_call(EXAMPLE, tier, &path(delivered), false, &levers);
            assert_eq!(
                s,
                Settlement {
                    upstream_usd: d(upstream),
                    baseline_usd: d(baseline),
                    burn_tokens: burn,
                    savings_tokens: savings,
                    pass_back_tokens: pass_back,
                    saturated: false,
                },
                "{requested} via {delivered}"
            );
            assert_eq!(s.net_tokens(), net, "{requested} via {delivered}");
            // Exact, not merely equal: no stray digits to show in the API.
            assert_eq!(s.upstream_usd.to_string(), upstream);
            assert_eq!(s.baseline_usd.to_string(), baseline);
        }
    }

    #[test]
    fn cached_input_is_part_of_input_and_priced_at_the_cached_price() {
        let levers = Levers::default();
        let usage = Usage {
            input: 1000,
            cached_input: 400,
            output: 500,
        };
        let mut gpt = path("openai:gpt-4o");
        // Without a cached price, cached tokens cost the input price: same as no cache.
        let s = price_call(usage, Tier::Balanced, &gpt, false, &levers);
        assert_eq!(
            (s.upstream_usd, s.burn_tokens, s.savings_tokens),
            (d("0.00825"), 10500, 2250)
        );
        // (600*2.5 + 400*1.25 + 500*10) / 1e6 * 1.1 = 0.0077; the baseline counts all 1000 at 3.
        gpt.cached_input_usd_per_m_tok = Some(d("1.25"));
        let s = price_call(usage, Tier::Balanced, &gpt, false, &levers);
        assert_eq!(
            (
                s.upstream_usd,
                s.baseline_usd,
                s.burn_tokens,
                s.savings_tokens,
                s.pass_back_tokens,
                s.net_tokens()
            ),
            (d("0.0077"), d("0.0105"), 10500, 2800, 1680, 8820)
        );
        // More cached tokens than input tokens (a confused upstream) counts as all input cached.
        let all_cached = Usage {
            cached_input: 1000,
            ..usage
        };
        let too_many = Usage {
            cached_input: 5000,
            ..usage
        };
        assert_eq!(
            price_call(too_many, Tier::Balanced, &gpt, false, &levers),
            price_call(all_cached, Tier::Balanced, &gpt, false, &levers)
        );
    }

    #[test]
    fn inferred_paths_are_priced_at_their_tier_ceiling() {
        let levers = Levers::default();
        let r = native_path(
            &default_catalogue(),
            &levers.model_tier_map,
            "claude-sonnet-4-20250514",
            |_| true,
        )
        .unwrap();
        assert!(r.inferred);
        let s = price_call(EXAMPLE, r.requested_tier, &r.path, true, &levers);
        // 0.0105 * 1.1: the ceiling plus the markup; nothing saved.
        assert_eq!(
            (
                s.upstream_usd,
                s.baseline_usd,
                s.burn_tokens,
                s.savings_tokens,
                s.pass_back_tokens,
                s.net_tokens()
            ),
            (d("0.01155"), d("0.0105"), 11550, 0, 0, 11550)
        );
    }

    #[test]
    fn rounding_is_up_for_burn_and_down_for_savings_and_pass_back() {
        let mut levers = Levers::default();
        levers.token_usd_rate.cost_basis_usd_per_token = d("0.0000003");
        let one_in = Usage {
            input: 1,
            cached_input: 0,
            output: 0,
        };
        // baseline 0.8e-6, upstream 0.2e-6 * 1.1 = 0.22e-6: burn ceil(2.67) = 3,
        // savings floor(1.93) = 1, pass-back floor(0.6) = 0.
        let s = price_call(
            one_in,
            Tier::Cheap,
            &path("fireworks:llama-3.1-8b-instruct"),
            false,
            &levers,
        );
        assert_eq!(
            (
                s.upstream_usd,
                s.baseline_usd,
                s.burn_tokens,
                s.savings_tokens,
                s.pass_back_tokens,
                s.net_tokens()
            ),
            (d("0.00000022"), d("0.0000008"), 3, 1, 0, 3)
        );
        // A cost basis whose quotient does not terminate in 28 digits: 1/3 of a token exactly
        // cannot be represented, yet burn is still the exact ceiling.
        levers.token_usd_rate.cost_basis_usd_per_token = d("0.000003");
        levers.upstream_markup_pct = Decimal::ZERO;
        let s = price_call(
            one_in,
            Tier::Cheap,
            &path("fireworks:llama-3.1-8b-instruct"),
            false,
            &levers,
        );
        assert_eq!((s.burn_tokens, s.savings_tokens), (1, 0));
        let three_m = Usage {
            input: 3_000_000,
            cached_input: 0,
            output: 0,
        };
        // baseline 2.4 USD / 0.000003 = 800000 exactly; upstream 0.6 USD; savings 600000.
        let s = price_call(
            three_m,
            Tier::Cheap,
            &path("fireworks:llama-3.1-8b-instruct"),
            false,
            &levers,
        );
        assert_eq!(
            (s.burn_tokens, s.savings_tokens, s.pass_back_tokens),
            (800_000, 600_000, 360_000)
        );
    }

    #[test]
    fn division_is_exact_where_decimal_division_rounds() {
        // 5.9999999999999999999999999999 / 2 = 2.99999999999999999999999999995, which needs 30
        // digits: `Decimal` division rounds it up to 3.
        let a = d("5.9999999999999999999999999999");
        assert_eq!((a / Decimal::TWO).floor(), Decimal::from(3));
        assert_eq!(div_floor(a, Decimal::TWO), Some((2, false)));
        assert_eq!(div_ceil(a, Decimal::TWO), Some(3));
        assert_eq!(div_floor(d("6"), Decimal::TWO), Some((3, true)));
        assert_eq!(div_floor(Decimal::ZERO, Decimal::TWO), Some((0, true)));
        assert_eq!(div_floor(Decimal::ONE, Decimal::ZERO), None);
        assert_eq!(div_floor(-Decimal::ONE, Decimal::ONE), None);
        assert_eq!(
            div_floor(Decimal::from(MAX_TOKENS), Decimal::ONE),
            Some((MAX_TOKENS, true))
        );
        assert_eq!(div_floor(Decimal::from(MAX_TOKENS) + Decimal::ONE, Decimal::ONE), None);
        assert_eq!(div_ceil(d("9223372036854775807.5"), Decimal::ONE), None);
    }

    #[test]
    fn nothing_used_costs_nothing() {
        let s = price_call(
            Usage::default(),
            Tier::Heavy,
            &path("openai:o1"),
            false,
            &Levers::default(),
        );
        assert_eq!(
            (
                s.upstream_usd,
                s.baseline_usd,
                s.burn_tokens,
                s.savings_tokens,
                s.net_tokens(),
                s.saturated
            ),
            (Decimal::ZERO, Decimal::ZERO, 0, 0, 0, false)
        );
    }

    #[test]
    fn absurd_figures_saturate_without_panicking() {
        let levers = Levers::default();
        let huge = Usage {
            input: u64::MAX,
            cached_input: u64::MAX,
            output: u64::MAX,
        };
        for p in default_catalogue() {
            for tier in Tier::ALL {
                for at_ceiling in [false, true] {
                    let s = price_call(huge, tier, &p, at_ceiling, &levers);
                    assert!(s.saturated, "{}", p.id);
                    assert_eq!(
                        (s.burn_tokens, s.savings_tokens, s.pass_back_tokens),
                        (MAX_TOKENS, 0, 0)
                    );
                    assert_eq!(s.net_tokens(), i64::MAX);
                }
            }
        }
        // Decimal overflow inside the USD figures, too.
        let mut absurd = Levers::default();
        absurd.benchmark_ceilings.heavy.input = Decimal::MAX;
        absurd.token_usd_rate.cost_basis_usd_per_token = d("0.0000000000000000000000000001");
        let mut p = path("openai:o1");
        p.input_usd_per_m_tok = Decimal::MAX;
        let s = price_call(huge, Tier::Heavy, &p, false, &absurd);
        assert!(s.saturated);
        assert_eq!((s.upstream_usd, s.baseline_usd), (Decimal::MAX, Decimal::MAX));
        assert!(price_call(EXAMPLE, Tier::Heavy, &p, false, &absurd).saturated);
        assert_eq!(reservation_tokens(u64::MAX, u64::MAX, Tier::Heavy, &absurd), MAX_TOKENS);
        assert_eq!(reservation_tokens(u64::MAX, u64::MAX, Tier::Heavy, &levers), MAX_TOKENS);
    }

    #[test]
    fn reservations() {
        let levers = Levers::default();
        assert_eq!(reservation_tokens(1000, 500, Tier::Balanced, &levers), 10500);
        assert_eq!(reservation_tokens(1000, 500, Tier::Heavy, &levers), 52500);
        // 10 prompt tokens and the default 4096 output tokens on cheap: (8 + 16384) / 1e6 USD.
        assert_eq!(reservation_tokens(10, 4096, Tier::Cheap, &levers), 16392);
        assert_eq!(reservation_tokens(0, 0, Tier::Cheap, &levers), 0);
        let mut odd = Levers::default();
        odd.token_usd_rate.cost_basis_usd_per_token = d("0.000007");
        // 10500e-6 / 7e-6 = 1500 exactly; 10503e-6 / 7e-6 = 1500.43 -> 1501.
        assert_eq!(reservation_tokens(1000, 500, Tier::Balanced, &odd), 1500);
        assert_eq!(reservation_tokens(1001, 500, Tier::Balanced, &odd), 1501);
    }

    #[test]
    fn topups() {
        let levers = Levers::default();
        assert_eq!(topup_tokens_for_usd(d("10.00"), &levers), Ok(10_000_000));
        assert_eq!(topup_tokens_for_usd(d("0.0000019"), &levers), Ok(1));
        assert_eq!(topup_tokens_for_usd(d("0.0000009"), &levers), Err(TopupError::TooSmall));
        assert_eq!(
            topup_tokens_for_usd(Decimal::ZERO, &levers),
            Err(TopupError::NotPositive)
        );
        assert_eq!(topup_tokens_for_usd(d("-5"), &levers), Err(TopupError::NotPositive));
        assert_eq!(topup_tokens_for_usd(Decimal::MAX, &levers), Err(TopupError::TooLarge));
        // i64::MAX tokens is the most a top-up can buy.
        assert_eq!(topup_tokens_for_usd(d("9223372036854.775807"), &levers), Ok(MAX_TOKENS));
        assert_eq!(
            topup_tokens_for_usd(d("9223372036854.775808"), &levers),
            Err(TopupError::TooLarge)
        );
        let mut thirds = Levers::default();
        thirds.token_usd_rate.topup_usd_per_token = d("0.03");
        assert_eq!(topup_tokens_for_usd(d("1"), &thirds), Ok(33));
        assert_eq!(topup_tokens_for_usd(d("0.99"), &thirds), Ok(33));
        assert_eq!(topup_tokens_for_usd(d("0.98"), &thirds), Ok(32));
    }

    fn decimal(max_mantissa: u64, max_scale: u32) -> impl Strategy<Value = Decimal> {
        (0..=max_mantissa, 0..=max_scale).prop_map(|(m, s)| Decimal::from_i128_with_scale(m.into(), s))
    }

    proptest! {
        /// The exact division agrees with integer arithmetic: a = A/10^sa, b = B/10^sb, so
        /// a/b = A*10^sb / (B*10^sa).
        #[test]
        fn division_matches_integer_reference(a in decimal(1 << 40, 12), b in decimal(1 << 40, 12)) {
            prop_assume!(b > Decimal::ZERO);
            let num = a.mantissa() as u128 * 10u128.pow(b.scale());
            let den = b.mantissa() as u128 * 10u128.pow(a.scale());
            let floor = num / den;
            let exact = floor * den == num;
            let got = div_floor(a, b);
            if floor > MAX_TOKENS as u128 {
                prop_assert_eq!(got, None);
            } else {
                prop_assert_eq!(got, Some((floor as u64, exact)));
                let ceil = floor + u128::from(!exact);
                prop_assert_eq!(div_ceil(a, b).map(u128::from), (ceil <= MAX_TOKENS as u128).then_some(ceil));
            }
        }

        /// For any usage, path and levers: pass-back <= savings <= burn, net = burn - pass-back,
        /// and burn is the least number of tokens that covers the larger cost.
        #[test]
        fn settlement_invariants(
            input in 0u64..=50_000_000,
            cached in 0u64..=50_000_000,
            output in 0u64..=50_000_000,
            path_in in decimal(100_000, 3),
            path_out in decimal(100_000, 3),
            path_cached in proptest::option::of(decimal(100_000, 3)),
            ceil_in in decimal(100_000, 3),
            ceil_out in decimal(100_000, 3),
            basis in decimal(1_000_000, 9),
            ratio in decimal(1000, 3),
            markup in decimal(10_000, 3),
            at_ceiling in any::<bool>(),
            tier_ix in 0usize..3,
        ) {
            prop_assume!(basis > Decimal::ZERO);
            let mut levers = Levers::default();
            levers.token_usd_rate.cost_basis_usd_per_token = basis;
            levers.pass_back_ratio = ratio.min(Decimal::ONE);
            levers.upstream_markup_pct = markup.min(Decimal::TEN);
            let tier = Tier::ALL[tier_ix];
            match tier {
                Tier::Heavy => levers.benchmark_ceilings.heavy = crate::economics::Ceiling { input: ceil_in, output: ceil_out },
                Tier::Balanced => levers.benchmark_ceilings.balanced = crate::economics::Ceiling { input: ceil_in, output: ceil_out },
                Tier::Cheap => levers.benchmark_ceilings.cheap = crate::economics::Ceiling { input: ceil_in, output: ceil_out },
            }
            let mut p = path("openai:gpt-4o");
            p.tier = tier;
            p.input_usd_per_m_tok = path_in;
            p.output_usd_per_m_tok = path_out;
            p.cached_input_usd_per_m_tok = path_cached;
            let usage = Usage { input, cached_input: cached, output };
            let s = price_call(usage, tier, &p, at_ceiling, &levers);
            prop_assert!(!s.saturated);
            prop_assert!(s.pass_back_tokens <= s.savings_tokens && s.savings_tokens <= s.burn_tokens);
            prop_assert_eq!(s.net_tokens() as u64 + s.pass_back_tokens, s.burn_tokens);
            let cost = s.upstream_usd.max(s.baseline_usd);
            let burn = Decimal::from(s.burn_tokens);
            prop_assert!(burn * basis >= cost);
            prop_assert!(s.burn_tokens == 0 || (burn - Decimal::ONE) * basis < cost);
            let saved = (s.baseline_usd - s.upstream_usd).max(Decimal::ZERO);
            prop_assert!(Decimal::from(s.savings_tokens) * basis <= saved);
            prop_assert!(Decimal::from(s.savings_tokens + 1) * basis > saved);
            if at_ceiling {
                prop_assert_eq!(s.savings_tokens, 0);
            }
        }
    }
}
