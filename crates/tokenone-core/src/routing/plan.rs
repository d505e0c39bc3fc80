//! The planner: among the catalogue's eligible paths, the cheapest by estimated cost is the
//! primary; the fallback is the cheapest one rung up, else the native path.

use crate::catalogue::Path;
use crate::tiers::Tier;
use rust_decimal::Decimal;

/// Output tokens the planner assumes: the request's limit, at most this; this when it has none.
pub const EST_OUT_CAP: u64 = 1_024;

/// What the planner needs to know about one call.
pub struct PlanInput<'a> {
    pub catalogue: &'a [Path],
    /// Only for the log line; the native path already says which model it is.
    pub requested_model: &'a str,
    pub requested_tier: Tier,
    /// The requested model's native path (`catalogue::native_path`).
    pub native: &'a Path,
    /// The classifier's tier, hints applied.
    pub needed: Tier,
    pub needs_tools: bool,
    pub needs_images: bool,
    /// Estimated prompt tokens.
    pub est_in: u64,
    /// The request's max output tokens.
    pub max_out: Option<u64>,
    /// Enabled, configured (live credential) and healthy (breaker not open): the caller decides.
    pub eligible: &'a dyn Fn(&Path) -> bool,
}

/// Where a call goes, and where it goes if that fails before any byte reached the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub primary: Path,
    pub fallback: Option<Path>,
    /// Paths that passed every filter (0 when the primary is the native path by default).
    pub candidates_considered: usize,
}

/// Output tokens the estimate assumes for a request with this limit.
pub fn est_out(max_out: Option<u64>) -> u64 {
    max_out.map_or(EST_OUT_CAP, |m| m.min(EST_OUT_CAP))
}

/// `(est_in * in + est_out * out) / 1e6` in USD, exact. Saturates instead of overflowing for
/// absurd admin-entered prices, so such a path simply loses.
pub fn estimated_cost_usd(path: &Path, est_in: u64, est_out: u64) -> Decimal {
    let cost = Decimal::from(est_in)
        .checked_mul(path.input_usd_per_m_tok)
        .and_then(|i| {
            Decimal::from(est_out)
                .checked_mul(path.output_usd_per_m_tok)
                .and_then(|o| i.checked_add(o))
        })
        .unwrap_or(Decimal::MAX);
    cost.checked_div(Decimal::from(1_000_000u32)).unwrap_or(Decimal::MAX)
}

/// economics.md, smart routing step 3.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    // Hints may ask for more than the requested tier; the plan never goes above it.
    let needed = input.needed.min(input.requested_tier);
    let out = est_out(input.max_out);
    let supports = |p: &Path| (!input.needs_tools || p.tools) && (!input.needs_images || p.vision);
    let usable = |p: &&Path| p.enabled && supports(p) && (input.eligible)(p);

    let mut candidates: Vec<(Decimal, &Path)> = input
        .catalogue
        .iter()
        .filter(|p| needed <= p.tier && p.tier <= input.requested_tier)
        .filter(usable)
        .map(|p| (estimated_cost_usd(p, input.est_in, out), p))
        .collect();
    candidates.sort_by(|(ca, a), (cb, b)| ca.cmp(cb).then_with(|| a.id.cmp(&b.id)));

    let Some(&(_, primary)) = candidates.first() else {
        tracing::debug!(model = input.requested_model, needed = %needed, "no eligible path: native");
        return Plan {
            primary: input.native.clone(),
            fallback: None,
            candidates_considered: 0,
        };
    };

    // One rung up from the primary, still within the requested tier. The candidates above hold
    // only tiers >= needed, and primary.tier >= needed, so this rung is among them.
    let rung_up = primary.tier.up().filter(|t| *t <= input.requested_tier);
    let fallback = rung_up
        .and_then(|t| candidates.iter().find(|(_, p)| p.tier == t))
        .map(|(_, p)| (*p).clone())
        .or_else(|| {
            // The native path, unless it is the primary itself or its breaker is open.
            (input.native.id != primary.id && (input.eligible)(input.native)).then(|| input.native.clone())
        });

    tracing::debug!(
        model = input.requested_model,
        needed = %needed,
        primary = %primary.id,
        fallback = fallback.as_ref().map(|p| p.id.as_str()),
        candidates = candidates.len(),
        "planned"
    );
    Plan {
        primary: primary.clone(),
        fallback,
        candidates_considered: candidates.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{default_catalogue, native_path};
    use crate::tiers::TierMap;
    use std::str::FromStr;
    use Tier::*;

    struct Case {
        model: &'static str,
        needed: Tier,
        tools: bool,
        images: bool,
        est_in: u64,
        max_out: Option<u64>,
        excluded: &'static [&'static str],
        none_eligible: bool,
    }

    impl Case {
        fn new(model: &'static str, needed: Tier) -> Self {
            Case {
                model,
                needed,
                tools: false,
                images: false,
                est_in: 100,
                max_out: None,
                excluded: &[],
                none_eligible: false,
            }
        }
    }

    fn run_on(catalogue: &[Path], c: &Case) -> Plan {
        let resolved = native_path(catalogue, &TierMap::default(), c.model, |_| true).unwrap();
        let eligible = |p: &Path| !c.none_eligible && !c.excluded.contains(&p.id.as_str());
        plan(&PlanInput {
            catalogue,
            requested_model: c.model,
            requested_tier: resolved.requested_tier,
            native: &resolved.path,
            needed: c.needed,
            needs_tools: c.tools,
            needs_images: c.images,
            est_in: c.est_in,
            max_out: c.max_out,
            eligible: &eligible,
        })
    }

    fn run(c: &Case) -> Plan {
        run_on(&default_catalogue(), c)
    }

    fn ids(p: &Plan) -> (&str, Option<&str>) {
        (p.primary.id.as_str(), p.fallback.as_ref().map(|f| f.id.as_str()))
    }

    #[test]
    fn est_out_is_capped() {
        assert_eq!(est_out(None), 1024);
        assert_eq!(est_out(Some(200)), 200);
        assert_eq!(est_out(Some(1024)), 1024);
        assert_eq!(est_out(Some(50_000)), 1024);
    }

    #[test]
    fn cost_is_exact_decimal() {
        let c = default_catalogue();
        let sonnet = c.iter().find(|p| p.id == "anthropic:claude-sonnet-4").unwrap();
        // 1000 * 3 + 500 * 15 = 10500 micro-USD.
        assert_eq!(
            estimated_cost_usd(sonnet, 1000, 500),
            Decimal::from_str("0.0105").unwrap()
        );
        let mut absurd = sonnet.clone();
        absurd.input_usd_per_m_tok = Decimal::MAX;
        assert_eq!(
            estimated_cost_usd(&absurd, u64::MAX, 1024),
            Decimal::MAX / Decimal::from(1_000_000)
        );
    }

    #[test]
    fn short_prompt_for_sonnet_goes_to_the_cheapest_8b() {
        // The spec's example: `claude-sonnet-4` with a short plain prompt.
        let p = run(&Case::new("claude-sonnet-4", Cheap));
        // 100*0.05 + 1024*0.08 beats every other cheap or balanced path; the fallback is the
        // cheapest balanced path: fireworks deepseek-v3 and llama-70b both cost 100*0.9 +
        // 1024*0.9, and the tie goes to the smaller id.
        assert_eq!(
            ids(&p),
            ("openrouter:llama-3.1-8b-instruct", Some("fireworks:deepseek-v3"))
        );
        // Cheap: 4 paths (haiku, 4o-mini, flash, 2×8b) = 5; balanced: sonnet, 4o, pro, 70b,
        // 2×deepseek-v3 = 6.
        assert_eq!(p.candidates_considered, 11);

        // Without openrouter, fireworks' 8b (0.2/0.2) is the next cheapest.
        let p = run(&Case {
            excluded: &["openrouter:llama-3.1-8b-instruct"],
            ..Case::new("claude-sonnet-4", Cheap)
        });
        assert_eq!(p.primary.id, "fireworks:llama-3.1-8b-instruct");
    }

    #[test]
    fn ties_go_to_the_smaller_path_id() {
        // fireworks:deepseek-v3 and fireworks:llama-3.1-70b-instruct both cost 0.9/0.9.
        let p = run(&Case {
            excluded: &["openrouter:deepseek-v3"],
            ..Case::new("claude-sonnet-4", Balanced)
        });
        assert_eq!(p.primary.id, "fireworks:deepseek-v3");
        // The order of the catalogue does not matter.
        let mut reversed = default_catalogue();
        reversed.reverse();
        let p = run_on(
            &reversed,
            &Case {
                excluded: &["openrouter:deepseek-v3"],
                ..Case::new("claude-sonnet-4", Balanced)
            },
        );
        assert_eq!(p.primary.id, "fireworks:deepseek-v3");
    }

    #[test]
    fn the_estimate_decides_between_input_and_output_heavy_prices() {
        // Long prompt, short answer: input price dominates. openrouter:deepseek-v3 (0.5 in / 1.5
        // out) beats fireworks' 0.9/0.9 at 100k in, 10 out.
        let p = run(&Case {
            est_in: 100_000,
            max_out: Some(10),
            ..Case::new("claude-sonnet-4", Balanced)
        });
        assert_eq!(p.primary.id, "openrouter:deepseek-v3");
        // Short prompt, 1024 out: output price dominates, fireworks wins.
        let p = run(&Case {
            est_in: 10,
            ..Case::new("claude-sonnet-4", Balanced)
        });
        assert_eq!(p.primary.id, "fireworks:deepseek-v3");
    }

    #[test]
    fn fallback_is_one_rung_up_within_the_requested_tier() {
        // Heavy requested, cheap needed: primary cheap, fallback the cheapest balanced.
        let p = run(&Case::new("claude-opus-4", Cheap));
        assert_eq!(
            ids(&p),
            ("openrouter:llama-3.1-8b-instruct", Some("fireworks:deepseek-v3"))
        );
        // Heavy requested, balanced needed: fallback the cheapest heavy (405b: 3/3).
        let p = run(&Case::new("claude-opus-4", Balanced));
        assert_eq!(
            ids(&p),
            ("fireworks:deepseek-v3", Some("fireworks:llama-3.1-405b-instruct"))
        );
        // The rung up exists but nothing there is eligible: the native path.
        let p = run(&Case {
            excluded: &[
                "anthropic:claude-sonnet-4",
                "openai:gpt-4o",
                "gemini:gemini-1.5-pro",
                "fireworks:llama-3.1-70b-instruct",
                "fireworks:deepseek-v3",
                "openrouter:deepseek-v3",
            ],
            ..Case::new("claude-opus-4", Cheap)
        });
        assert_eq!(
            ids(&p),
            ("openrouter:llama-3.1-8b-instruct", Some("anthropic:claude-opus-4"))
        );
    }

    #[test]
    fn no_rung_above_the_requested_tier() {
        // Balanced requested and needed: the rung up (heavy) is above the requested tier, so the
        // fallback is the native path.
        let p = run(&Case::new("gpt-4o", Balanced));
        assert_eq!(ids(&p), ("fireworks:deepseek-v3", Some("openai:gpt-4o")));
        // Heavy requested and needed: no rung up at all.
        let p = run(&Case::new("claude-opus-4", Heavy));
        assert_eq!(
            ids(&p),
            ("fireworks:llama-3.1-405b-instruct", Some("anthropic:claude-opus-4"))
        );
    }

    #[test]
    fn the_native_path_is_no_fallback_for_itself() {
        // Cheap requested: everything cheap is eligible and openrouter's 8b is both the native
        // path of llama-3.1-8b-instruct and the cheapest.
        let p = run(&Case::new("llama-3.1-8b-instruct", Cheap));
        assert_eq!(ids(&p), ("openrouter:llama-3.1-8b-instruct", None));
        // A native path whose breaker is open is no fallback either.
        let p = run(&Case {
            excluded: &["openai:gpt-4o"],
            ..Case::new("gpt-4o", Balanced)
        });
        assert_eq!(ids(&p), ("fireworks:deepseek-v3", None));
    }

    #[test]
    fn nothing_eligible_means_native() {
        let p = run(&Case {
            none_eligible: true,
            ..Case::new("claude-sonnet-4", Cheap)
        });
        assert_eq!(ids(&p), ("anthropic:claude-sonnet-4", None));
        assert_eq!(p.candidates_considered, 0);

        // A pattern-matched model outside the catalogue, with every catalogue path disabled.
        let mut c = default_catalogue();
        c.iter_mut().for_each(|p| p.enabled = false);
        let p = run_on(&c, &Case::new("claude-sonnet-4-20250514", Cheap));
        assert_eq!(ids(&p), ("anthropic:claude-sonnet-4-20250514", None));
    }

    #[test]
    fn features_exclude_paths() {
        // Images: only openai, anthropic and gemini paths have vision.
        let p = run(&Case {
            images: true,
            ..Case::new("claude-sonnet-4", Cheap)
        });
        assert_eq!(ids(&p), ("gemini:gemini-1.5-flash", Some("gemini:gemini-1.5-pro")));
        // Tools: a catalogue where the cheap 8b paths lack tools.
        let mut c = default_catalogue();
        c.iter_mut()
            .filter(|p| p.public_model == "llama-3.1-8b-instruct")
            .for_each(|p| p.tools = false);
        let with_tools = Case {
            tools: true,
            ..Case::new("claude-sonnet-4", Cheap)
        };
        assert_eq!(run_on(&c, &with_tools).primary.id, "gemini:gemini-1.5-flash");
        // Without tools they are still eligible.
        assert_eq!(
            run_on(&c, &Case::new("claude-sonnet-4", Cheap)).primary.id,
            "openrouter:llama-3.1-8b-instruct"
        );
    }

    #[test]
    fn tiers_bound_the_candidates() {
        // Needed balanced: nothing cheap, even though cheap paths cost less.
        let p = run(&Case::new("claude-sonnet-4", Balanced));
        assert_eq!(p.primary.tier, Balanced);
        assert_eq!(p.candidates_considered, 6);
        // Requested balanced: nothing heavy, even when asked for more (a hint above the tier).
        let p = run(&Case::new("claude-sonnet-4", Heavy));
        assert_eq!(p.primary.tier, Balanced);
        // Disabled paths are never candidates, whatever the caller says.
        let mut c = default_catalogue();
        c.iter_mut()
            .filter(|p| p.provider == "openrouter")
            .for_each(|p| p.enabled = false);
        assert_eq!(
            run_on(&c, &Case::new("claude-sonnet-4", Cheap)).primary.id,
            "fireworks:llama-3.1-8b-instruct"
        );
    }
}
