//! Smart routing (economics.md): read a request, classify the tier it needs, plan the cheapest
//! eligible delivery path with a fallback, and decide under the router switch. Pure logic.
//!
//! # The flow of one call
//! 1. [`Hints::parse`] the client's headers (400 on an unknown value). With `pin`, deliver
//!    [`Decision::native`] and skip the rest.
//! 2. [`classify`] the [`RequestTraits`], then [`Hints::apply`] a `min_tier`.
//! 3. [`plan`] over the catalogue, with `eligible` = enabled, configured and
//!    `!breakers.is_open(..)`.
//! 4. [`decide`] under the [`RouterMode`] and rollout; deliver, [`Breakers::record_attempt`];
//!    on a failure before the first byte that is [`retryable`], record it on the breaker and
//!    deliver on the fallback.
//!
//! # Classifier rules
//! The classifier starts at `cheap` and only raises; each rule that fires adds its reason. The
//! result is capped at the requested tier (`capped_at_requested`).
//! - **Unsure → the requested tier**, and nothing else is judged: no user text to read
//!   (`no_user_text`, e.g. an image-only message), or more than 32k prompt tokens
//!   (`very_long_context`: too much to judge from a glance at its ends, and where a wrong
//!   downgrade costs most).
//! - **Size**: up to 1k prompt tokens `short_prompt`; up to 8k `medium_prompt`, balanced unless
//!   the text names a light task (`light_task`: summarise, translate, classify, extract, rewrite,
//!   proofread); above 8k `long_context`, balanced.
//! - **Tools**: `tools` alone stays cheap (one lookup or one function call); with 6 or more
//!   messages it is an agent loop: `many_turns`, balanced. Without tools (`no_tools`), 16 or more
//!   messages are `many_turns`, balanced.
//! - **Images**: `images`, balanced (charts, receipts and screenshots need more than a caption).
//! - **Code**: code in the request or a programming task named in the text (`code`), balanced.
//! - **JSON mode**: `json_mode`; filling it from more than a short prompt (schema extraction from
//!   a document) is balanced, from a sentence stays cheap.
//! - **Output**: a limit above 4096 tokens (`large_output`) is balanced; 16384 or more
//!   (`very_large_output`, what reasoning models and long deliverables ask for) is heavy. 4096 and
//!   below are common SDK defaults and say nothing.
//! - **Reasoning** (`reasoning_cues`): a proof, derivation, step-by-step, "think carefully", a
//!   probability or puzzle, or math notation is heavy (`deep_reasoning`); softer cues (analyse,
//!   compare, trade-offs, explain why, root cause, design) are balanced, and heavy when they come
//!   with code, a long context or a large output.
//!
//! Against the labelled set in `labelled.jsonl` (see `labelled.rs`), the test prints the
//! agreement and the confusion matrix and holds a 75% floor.

mod breaker;
mod classify;
mod hints;
mod plan;
mod switch;
mod traits;

#[cfg(test)]
mod labelled;

pub use breaker::{BreakerPolicy, BreakerState, Breakers};
pub use classify::{
    classify, classify_with_cues, Classification, LARGE_OUTPUT_TOKENS, LONG_CONTEXT_TOKENS, MANY_TURNS,
    MANY_TURNS_WITH_TOOLS, SHORT_PROMPT_TOKENS, VERY_LARGE_OUTPUT_TOKENS, VERY_LONG_CONTEXT_TOKENS,
};
pub use hints::{Hints, MIN_TIER_HEADER, ROUTE_HEADER};
pub use plan::{est_out, estimated_cost_usd, plan, Plan, PlanInput, EST_OUT_CAP};
pub use switch::{decide, retryable, rollout_selects, Decision, RouterMode};
pub use traits::{estimate_tokens, has_reasoning_cues, text_cues, Reasoning, RequestTraits, TextCues};
