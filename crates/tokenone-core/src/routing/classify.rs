//! The classifier: the tier a request needs, with the reasons, never above the requested tier.
//! The rules are listed in the [`routing`](super) module docs.

use super::traits::{text_cues, Reasoning, RequestTraits, TextCues};
use crate::tiers::Tier;
use serde::Serialize;

/// Up to this many prompt tokens a request is short.
pub const SHORT_PROMPT_TOKENS: u64 = 1_000;
/// Above this many prompt tokens a request has a long context (balanced at least).
pub const LONG_CONTEXT_TOKENS: u64 = 8_000;
/// Above this many prompt tokens the classifier does not judge: it keeps the requested tier.
pub const VERY_LONG_CONTEXT_TOKENS: u64 = 32_000;
/// A tool conversation of this many messages is an agent loop (balanced at least).
pub const MANY_TURNS_WITH_TOOLS: usize = 6;
/// A plain conversation of this many messages carries a lot of state (balanced at least).
pub const MANY_TURNS: usize = 16;
/// An output limit above this is a deliberate request for a long answer (balanced at least).
pub const LARGE_OUTPUT_TOKENS: u64 = 4_096;
/// An output limit of this or more is asked for reasoning models and long deliverables (heavy).
pub const VERY_LARGE_OUTPUT_TOKENS: u64 = 16_384;

/// The classifier's verdict: the tier the request needs and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub needed: Tier,
    /// snake_case, in rule order; what `recent-upstream-picks` shows as `reasons`.
    pub reasons: Vec<&'static str>,
}

/// The tier `traits` needs, never above `requested`. Deterministic, no I/O, microseconds: it reads
/// only the traits (and at most 6 KiB of the last user text).
pub fn classify(traits: &RequestTraits, requested: Tier) -> Classification {
    classify_with_cues(traits, requested, text_cues(&traits.last_user_text))
}

/// [`classify`] with the cues of `traits.last_user_text` already read (the proxy reads them once
/// for both the traits and the classification).
pub fn classify_with_cues(traits: &RequestTraits, requested: Tier, cues: TextCues) -> Classification {
    let text = traits.last_user_text.as_str();
    // Unsure: nothing to read, or too much to judge from its ends.
    if text.trim().is_empty() {
        return Classification {
            needed: requested,
            reasons: vec!["no_user_text"],
        };
    }
    if traits.est_prompt_tokens > VERY_LONG_CONTEXT_TOKENS {
        return Classification {
            needed: requested,
            reasons: vec!["very_long_context"],
        };
    }

    let mut needed = Tier::Cheap;
    let mut reasons = Vec::with_capacity(8);
    let mut raise = |to: Tier| needed = needed.max(to);

    let light = cues.light_task;
    let long_context = traits.est_prompt_tokens > LONG_CONTEXT_TOKENS;
    if traits.est_prompt_tokens <= SHORT_PROMPT_TOKENS {
        reasons.push("short_prompt");
    } else if !long_context {
        reasons.push("medium_prompt");
        if !light {
            raise(Tier::Balanced);
        }
    } else {
        reasons.push("long_context");
        raise(Tier::Balanced);
    }
    if light {
        reasons.push("light_task");
    }

    if traits.tools {
        reasons.push("tools");
        if traits.turns >= MANY_TURNS_WITH_TOOLS {
            reasons.push("many_turns");
            raise(Tier::Balanced);
        }
    } else {
        reasons.push("no_tools");
        if traits.turns >= MANY_TURNS {
            reasons.push("many_turns");
            raise(Tier::Balanced);
        }
    }

    if traits.images {
        reasons.push("images");
        raise(Tier::Balanced);
    }

    let code = traits.has_code || cues.code_task;
    if code {
        reasons.push("code");
        raise(Tier::Balanced);
    }

    if traits.json_mode {
        reasons.push("json_mode");
        // Filling a schema from a document, rather than from a sentence.
        if traits.est_prompt_tokens > SHORT_PROMPT_TOKENS {
            raise(Tier::Balanced);
        }
    }

    let max_out = traits.max_output_tokens.unwrap_or(0);
    let large_output = max_out > LARGE_OUTPUT_TOKENS;
    if max_out >= VERY_LARGE_OUTPUT_TOKENS {
        reasons.push("very_large_output");
        raise(Tier::Heavy);
    } else if large_output {
        reasons.push("large_output");
        raise(Tier::Balanced);
    }

    if traits.reasoning_cues {
        reasons.push("reasoning_cues");
        // Cues found elsewhere than in the last user text count as soft.
        if cues.reasoning == Reasoning::Strong {
            reasons.push("deep_reasoning");
            raise(Tier::Heavy);
        } else if code || long_context || large_output {
            // Analysis over code, a long document or a long deliverable.
            raise(Tier::Heavy);
        } else {
            raise(Tier::Balanced);
        }
    }

    if needed > requested {
        reasons.push("capped_at_requested");
        needed = requested;
    }
    Classification { needed, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Tier::*;

    fn t(text: &str) -> RequestTraits {
        RequestTraits::from_text("", text)
    }

    /// One rule per row: the traits, the requested tier, the expected tier and reasons.
    #[test]
    fn rules() {
        let long = |tokens: u64| RequestTraits {
            est_prompt_tokens: tokens,
            ..t("Here is the document; what does it say about pricing?")
        };
        let cases: Vec<(&str, RequestTraits, Tier, Tier, Vec<&str>)> = vec![
            (
                "short plain chat",
                t("hi there"),
                Heavy,
                Cheap,
                vec!["short_prompt", "no_tools"],
            ),
            (
                "short translation",
                t("Translate to German: good morning"),
                Balanced,
                Cheap,
                vec!["short_prompt", "light_task", "no_tools"],
            ),
            (
                "a simple tool call",
                RequestTraits {
                    tools: true,
                    ..t("weather in Paris?")
                },
                Heavy,
                Cheap,
                vec!["short_prompt", "tools"],
            ),
            (
                "tools over many turns",
                RequestTraits {
                    tools: true,
                    turns: 6,
                    ..t("now book it")
                },
                Heavy,
                Balanced,
                vec!["short_prompt", "tools", "many_turns"],
            ),
            (
                "many plain turns",
                RequestTraits {
                    turns: 16,
                    ..t("and then?")
                },
                Heavy,
                Balanced,
                vec!["short_prompt", "no_tools", "many_turns"],
            ),
            (
                "fifteen plain turns are not many",
                RequestTraits {
                    turns: 15,
                    ..t("and then?")
                },
                Heavy,
                Cheap,
                vec!["short_prompt", "no_tools"],
            ),
            (
                "medium prompt",
                long(4_000),
                Heavy,
                Balanced,
                vec!["medium_prompt", "no_tools"],
            ),
            (
                "medium prompt, light task",
                RequestTraits {
                    est_prompt_tokens: 4_000,
                    ..t("Summarize the thread below.")
                },
                Heavy,
                Cheap,
                vec!["medium_prompt", "light_task", "no_tools"],
            ),
            (
                "long context",
                long(8_001),
                Heavy,
                Balanced,
                vec!["long_context", "no_tools"],
            ),
            (
                "very long context keeps the requested tier",
                long(32_001),
                Heavy,
                Heavy,
                vec!["very_long_context"],
            ),
            (
                "no user text keeps the requested tier",
                RequestTraits {
                    images: true,
                    ..t("  ")
                },
                Balanced,
                Balanced,
                vec!["no_user_text"],
            ),
            (
                "images",
                RequestTraits {
                    images: true,
                    ..t("what is in this picture?")
                },
                Heavy,
                Balanced,
                vec!["short_prompt", "no_tools", "images"],
            ),
            (
                "pasted code",
                t("fix this\n```\nlet x = 1\n```"),
                Heavy,
                Balanced,
                vec!["short_prompt", "no_tools", "code"],
            ),
            (
                "a code task without code",
                t("Write a SQL query listing late invoices"),
                Heavy,
                Balanced,
                vec!["short_prompt", "no_tools", "code"],
            ),
            (
                "json from a sentence",
                RequestTraits {
                    json_mode: true,
                    ..t("Extract the name: Ann Lee, CTO")
                },
                Heavy,
                Cheap,
                vec!["short_prompt", "light_task", "no_tools", "json_mode"],
            ),
            (
                "json schema from a document",
                RequestTraits {
                    json_mode: true,
                    est_prompt_tokens: 3_000,
                    ..t("Extract the parties into the schema")
                },
                Heavy,
                Balanced,
                vec!["medium_prompt", "light_task", "no_tools", "json_mode"],
            ),
            (
                "large output",
                RequestTraits {
                    max_output_tokens: Some(4_097),
                    ..t("write a long story")
                },
                Heavy,
                Balanced,
                vec!["short_prompt", "no_tools", "large_output"],
            ),
            (
                "a 4096-token limit is a common default, not a signal",
                RequestTraits {
                    max_output_tokens: Some(4_096),
                    ..t("write a story")
                },
                Heavy,
                Cheap,
                vec!["short_prompt", "no_tools"],
            ),
            (
                "very large output",
                RequestTraits {
                    max_output_tokens: Some(16_384),
                    ..t("write the whole plan")
                },
                Heavy,
                Heavy,
                vec!["short_prompt", "no_tools", "very_large_output"],
            ),
            (
                "soft reasoning",
                t("Compare Postgres and MySQL for us"),
                Heavy,
                Balanced,
                vec!["short_prompt", "no_tools", "reasoning_cues"],
            ),
            (
                "soft reasoning over code",
                t("Find the root cause of this deadlock:\n```go\nmu.Lock()\n```"),
                Heavy,
                Heavy,
                vec!["short_prompt", "no_tools", "code", "reasoning_cues"],
            ),
            (
                "soft reasoning over a long document",
                RequestTraits {
                    est_prompt_tokens: 20_000,
                    ..t("Analyse the indemnification clauses")
                },
                Heavy,
                Heavy,
                vec!["long_context", "no_tools", "reasoning_cues"],
            ),
            (
                "strong reasoning",
                t("Prove that sqrt(2) is irrational."),
                Heavy,
                Heavy,
                vec!["short_prompt", "no_tools", "reasoning_cues", "deep_reasoning"],
            ),
            (
                "cues found outside the last user text count as soft",
                RequestTraits {
                    reasoning_cues: true,
                    ..t("and the second one?")
                },
                Heavy,
                Balanced,
                vec!["short_prompt", "no_tools", "reasoning_cues"],
            ),
            (
                "never above the requested tier",
                t("Prove Fermat's little theorem."),
                Balanced,
                Balanced,
                vec![
                    "short_prompt",
                    "no_tools",
                    "reasoning_cues",
                    "deep_reasoning",
                    "capped_at_requested",
                ],
            ),
            (
                "requested cheap stays cheap",
                t("Write a SQL query"),
                Cheap,
                Cheap,
                vec!["short_prompt", "no_tools", "code", "capped_at_requested"],
            ),
        ];
        for (name, traits, requested, needed, reasons) in cases {
            let c = classify(&traits, requested);
            assert_eq!(c.needed, needed, "{name}: {:?}", c.reasons);
            assert_eq!(c.reasons, reasons, "{name}");
        }
    }

    #[test]
    fn never_above_requested_for_any_combination() {
        for bits in 0u32..(1 << 7) {
            let b = |i: u32| bits & (1 << i) != 0;
            let traits = RequestTraits {
                est_prompt_tokens: if b(0) { 20_000 } else { 100 },
                max_output_tokens: b(1).then_some(20_000),
                tools: b(2),
                images: b(3),
                json_mode: b(4),
                has_code: b(5),
                reasoning_cues: b(6),
                turns: if b(2) { 10 } else { 1 },
                system_chars: 0,
                last_user_text: "Prove it step by step".into(),
            };
            for requested in Tier::ALL {
                let c = classify(&traits, requested);
                assert!(c.needed <= requested, "{traits:?} {requested}");
                assert_eq!(c, classify(&traits, requested), "deterministic");
            }
        }
    }
}
