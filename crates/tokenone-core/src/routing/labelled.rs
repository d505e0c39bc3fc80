//! The classifier against the labelled requests of `labelled.jsonl`: prints the agreement and
//! the confusion matrix, and holds the classifier to a floor.
//!
//! Each line is one request: `id`, the last user `text`, a `context` summary of what else the
//! request carries (not read), the `traits` the proxy would read off it (everything but
//! `reasoning_cues` and `last_user_text`, which come from `text` as the proxy computes them), the
//! `requested` tier and the `label`: the tier a reasonable person would say the request needs,
//! judged from the request alone. The classifier may not go above the requested tier, so an item
//! is agreed when it names `min(label, requested)`.

use super::classify::classify;
use super::traits::{has_reasoning_cues, RequestTraits};
use crate::tiers::Tier;
use serde::Deserialize;

const DATA: &str = include_str!("labelled.jsonl");
const FLOOR_PCT: f64 = 75.0;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    id: String,
    text: String,
    #[serde(default)]
    #[allow(dead_code)]
    context: Option<String>,
    traits: Read,
    requested: Tier,
    label: Tier,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Read {
    est_prompt_tokens: u64,
    max_output_tokens: Option<u64>,
    tools: bool,
    images: bool,
    json_mode: bool,
    has_code: bool,
    turns: usize,
    system_chars: usize,
}

fn traits(item: &Item) -> RequestTraits {
    let r = &item.traits;
    RequestTraits {
        est_prompt_tokens: r.est_prompt_tokens,
        max_output_tokens: r.max_output_tokens,
        tools: r.tools,
        images: r.images,
        json_mode: r.json_mode,
        has_code: r.has_code,
        reasoning_cues: has_reasoning_cues(&item.text),
        turns: r.turns,
        system_chars: r.system_chars,
        last_user_text: item.text.clone(),
    }
}

fn items() -> Vec<Item> {
    DATA.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("labelled.jsonl line {}: {e}", i + 1)))
        .collect()
}

#[test]
fn the_set_is_broad_and_well_formed() {
    let items = items();
    assert!(items.len() >= 60, "{} items", items.len());
    let mut ids = std::collections::HashSet::new();
    for item in &items {
        assert!(ids.insert(item.id.as_str()), "duplicate id {}", item.id);
        let chars = (item.text.chars().count() + item.traits.system_chars) as u64;
        assert!(
            item.traits.est_prompt_tokens * 4 >= chars,
            "{}: tokens below chars/4",
            item.id
        );
        assert!(item.traits.turns >= 1, "{}", item.id);
    }
    for tier in Tier::ALL {
        assert!(items.iter().filter(|i| i.label == tier).count() >= 10, "label {tier}");
        assert!(items.iter().any(|i| i.requested == tier), "requested {tier}");
    }
}

#[test]
fn classifier_agreement_with_the_labelled_set() {
    let items = items();
    // confusion[expected][got]
    let mut confusion = [[0usize; 3]; 3];
    let (mut agreed, mut routed_too_low, mut kept_too_high) = (0, 0, 0);
    let (mut nontrivial, mut nontrivial_agreed) = (0, 0);
    let mut misses = Vec::new();
    for item in &items {
        let c = classify(&traits(item), item.requested);
        assert!(
            c.needed <= item.requested,
            "{}: {} above requested {}",
            item.id,
            c.needed,
            item.requested
        );
        let expected = item.label.min(item.requested);
        confusion[expected as usize][c.needed as usize] += 1;
        let ok = c.needed == expected;
        if item.requested != Tier::Cheap {
            nontrivial += 1;
            nontrivial_agreed += usize::from(ok);
        }
        if ok {
            agreed += 1;
        } else {
            if c.needed < expected {
                routed_too_low += 1;
            } else {
                kept_too_high += 1;
            }
            misses.push(format!(
                "  {:<28} requested {:<8} label {:<8} got {:<8} {:?}",
                item.id, item.requested, item.label, c.needed, c.reasons
            ));
        }
    }
    let pct = |a: usize, n: usize| a as f64 * 100.0 / n as f64;
    let overall = pct(agreed, items.len());
    println!("agreement {agreed}/{} = {overall:.1}%", items.len());
    println!(
        "agreement where the requested tier is above cheap {nontrivial_agreed}/{nontrivial} = {:.1}%",
        pct(nontrivial_agreed, nontrivial)
    );
    println!("disagreements: {routed_too_low} routed below the label (quality risk), {kept_too_high} kept above it (savings missed)");
    println!("confusion (rows: min(label, requested); columns: classifier)");
    println!("  {:<10}{:>8}{:>10}{:>8}", "", "cheap", "balanced", "heavy");
    for tier in Tier::ALL {
        let row = confusion[tier as usize];
        println!("  {:<10}{:>8}{:>10}{:>8}", tier.as_str(), row[0], row[1], row[2]);
    }
    println!("misses:\n{}", misses.join("\n"));
    assert!(overall >= FLOOR_PCT, "agreement {overall:.1}% below {FLOOR_PCT}%");
}
