//! What the classifier reads from a request ([`RequestTraits`]) and the text cues it looks for:
//! reasoning cues, code tasks and light tasks, found by whole-word phrase matching.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::OnceLock;

/// The facts about one request that the classifier reads. The proxy fills it from what the
/// providers crate reads off the request (`Features`); [`RequestTraits::from_text`] builds one for
/// tests and tools.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestTraits {
    /// Characters / 4 (rounded up) over all text: system, messages, tool calls and results.
    pub est_prompt_tokens: u64,
    /// The request's own output limit, if it sets one.
    pub max_output_tokens: Option<u64>,
    /// Tools are declared, or the conversation carries tool calls or results.
    pub tools: bool,
    /// Images or other media anywhere in the request.
    pub images: bool,
    /// JSON object or JSON schema output was asked for.
    pub json_mode: bool,
    /// Source code appears in the request.
    pub has_code: bool,
    /// The text asks for reasoning ([`has_reasoning_cues`] over the last user text).
    pub reasoning_cues: bool,
    /// Messages in the conversation, system prompt not counted.
    pub turns: usize,
    /// Characters of the system prompt.
    pub system_chars: usize,
    /// Text of the last user message that has text ("" when it holds only media).
    pub last_user_text: String,
}

/// Prompt tokens as the proxy estimates them: characters / 4, rounded up.
pub fn estimate_tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

impl RequestTraits {
    /// A single-turn request: an optional system prompt and one user message. Code is detected
    /// only by a fenced block here; the proxy uses the providers crate's fuller detector.
    pub fn from_text(system: &str, user: &str) -> Self {
        let system_chars = system.chars().count();
        RequestTraits {
            est_prompt_tokens: estimate_tokens(system_chars + user.chars().count()),
            max_output_tokens: None,
            tools: false,
            images: false,
            json_mode: false,
            has_code: system.contains("```") || user.contains("```"),
            reasoning_cues: has_reasoning_cues(user),
            turns: 1,
            system_chars,
            last_user_text: user.to_string(),
        }
    }
}

/// How strongly a text asks for reasoning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reasoning {
    #[default]
    None,
    /// Analysis, comparison, trade-offs, root causes, design: more than a lookup, not a proof.
    Soft,
    /// Proofs, derivations, explicit step-by-step reasoning, math, puzzles.
    Strong,
}

/// Asks for a proof, a derivation, careful step-by-step thought, math or a puzzle.
const STRONG_CUES: &[&str] = &[
    "step by step",
    "step-by-step",
    "prove",
    "proof",
    "proofs",
    "derive",
    "derivation",
    "think carefully",
    "think hard",
    "think through",
    "reason carefully",
    "rigorous",
    "rigorously",
    "theorem",
    "lemma",
    "show that",
    "show your work",
    "puzzle",
    "riddle",
    "how many ways",
    "probability",
    "expected value",
    "optimal strategy",
    "game theory",
    "solve for",
    "integral",
    "differential equation",
    "eigenvalue",
    "eigenvalues",
    "time complexity",
    "counterexample",
    "by induction",
    "by contradiction",
    "formally",
    "np-hard",
    "np-complete",
];

/// Asks for analysis or judgement rather than a lookup or a rewrite.
const SOFT_CUES: &[&str] = &[
    "analyze",
    "analyse",
    "analysis",
    "analyzing",
    "analysing",
    "explain why",
    "why does",
    "why do",
    "why is",
    "why are",
    "compare",
    "comparison",
    "trade-off",
    "trade-offs",
    "tradeoff",
    "tradeoffs",
    "pros and cons",
    "evaluate",
    "critique",
    "root cause",
    "diagnose",
    "implications",
    "architecture",
    "design a",
    "design an",
    "design the",
    "strategy",
    "hypothesis",
    "hypotheses",
    "what would happen if",
    "justify",
];

/// Names a programming task, even when no code is pasted.
const CODE_TASK_CUES: &[&str] = &[
    "write code",
    "this code",
    "the code",
    "my code",
    "code review",
    "function",
    "regex",
    "regular expression",
    "sql",
    "query",
    "script",
    "implement",
    "implementation",
    "refactor",
    "bug",
    "debug",
    "compile",
    "compiler",
    "unit test",
    "unit tests",
    "stack trace",
    "python",
    "javascript",
    "typescript",
    "rust",
    "golang",
    "java",
    "c++",
    "bash",
    "dockerfile",
    "kubernetes",
    "endpoint",
    "endpoints",
    "api",
    "pytest",
    "html",
    "css",
];

/// Names a task small models do well whatever the input length: rewriting, translating,
/// summarising, classifying, extracting.
const LIGHT_TASK_CUES: &[&str] = &[
    "summarize",
    "summarise",
    "summary",
    "tl;dr",
    "tldr",
    "translate",
    "translation",
    "classify",
    "categorize",
    "categorise",
    "extract",
    "rewrite",
    "rephrase",
    "paraphrase",
    "proofread",
    "fix the grammar",
    "bullet points",
    "bullets",
    "sentiment",
];

/// Longer texts are scanned only at both ends, where instructions sit, so classifying a pasted
/// book costs the same microseconds as a question. In bytes.
const SCAN_HEAD: usize = 4096;
const SCAN_TAIL: usize = 2048;

/// The cues found in one text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextCues {
    pub reasoning: Reasoning,
    /// Names a programming task.
    pub code_task: bool,
    /// Names a light task: rewrite, translate, summarise, classify, extract.
    pub light_task: bool,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Strong,
    Soft,
    Code,
    Light,
}

/// Words as cue matching sees them: runs of letters, digits and `+` (for `c++`). Hyphens and
/// other punctuation separate words, so `step-by-step` matches `step by step`.
///
/// Scans bytes and decodes only non-ASCII characters (splitting on a char predicate was the
/// classifier's largest cost).
fn words(text: &str) -> Words<'_> {
    Words { text, i: 0 }
}

/// The iterator of [`words`]; cheap to clone, so a phrase can be matched by looking ahead.
#[derive(Clone)]
struct Words<'a> {
    text: &'a str,
    /// Always on a char boundary: it only ever advances by whole characters.
    i: usize,
}

impl Words<'_> {
    /// Whether the non-ASCII character at `i` belongs to a word, and its length. (ASCII bytes
    /// are decided in [`Words::next`] without decoding.)
    fn word_char(&self, i: usize) -> (bool, usize) {
        match self.text[i..].chars().next() {
            Some(c) => (c.is_alphanumeric(), c.len_utf8()),
            None => (false, 1),
        }
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        // ASCII bytes are decided in the loop itself; only other characters are decoded.
        let bytes = self.text.as_bytes();
        let mut i = self.i;
        while i < bytes.len() {
            let b = bytes[i];
            if b.is_ascii() {
                if b.is_ascii_alphanumeric() || b == b'+' {
                    break;
                }
                i += 1;
            } else {
                let (is_word, n) = self.word_char(i);
                if is_word {
                    break;
                }
                i += n;
            }
        }
        if i >= bytes.len() {
            self.i = i;
            return None;
        }
        let start = i;
        while i < bytes.len() {
            let b = bytes[i];
            if b.is_ascii() {
                if !(b.is_ascii_alphanumeric() || b == b'+') {
                    break;
                }
                i += 1;
            } else {
                let (is_word, n) = self.word_char(i);
                if !is_word {
                    break;
                }
                i += n;
            }
        }
        self.i = i;
        Some(&self.text[start..i])
    }
}

/// Every cue phrase, as words, keyed by its first word: one hash lookup per word of the text
/// (foldhash: SipHash over every word was the classifier's largest cost).
type Index = HashMap<&'static str, Vec<(Vec<&'static str>, Kind)>, foldhash::fast::FixedState>;

fn index() -> &'static Index {
    // Built once from the constant lists above; read-only afterwards.
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut index = Index::default();
        let lists = [
            (STRONG_CUES, Kind::Strong),
            (SOFT_CUES, Kind::Soft),
            (CODE_TASK_CUES, Kind::Code),
            (LIGHT_TASK_CUES, Kind::Light),
        ];
        for (list, kind) in lists {
            for phrase in list {
                let ws: Vec<&'static str> = words(phrase).collect();
                if let Some(first) = ws.first() {
                    index.entry(*first).or_default().push((ws, kind));
                }
            }
        }
        index
    })
}

/// The lowercased part of `text` that cue matching reads: all of it, or its two ends.
fn scan_region(text: &str) -> String {
    if text.len() <= SCAN_HEAD + SCAN_TAIL {
        return text.to_lowercase();
    }
    let mut head = SCAN_HEAD;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - SCAN_TAIL;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}\n{}", text[..head].to_lowercase(), text[tail..].to_lowercase())
}

/// Math notation: symbols prose rarely uses, or an exponent such as `x^2`.
fn has_math_notation(hay: &str) -> bool {
    // Only `^` matters in ASCII text: the symbols are looked for only in text that has others.
    let exponent = hay.match_indices('^').any(|(i, _)| {
        let prev = hay[..i].chars().next_back().unwrap_or(' ');
        let next = hay[i + 1..].chars().next();
        (prev.is_alphanumeric() || prev == ')') && next.is_some_and(|n| n.is_alphanumeric() || n == '(')
    });
    exponent || (!hay.is_ascii() && hay.chars().any(|c| "∫∑∏√≤≥≠∀∃∈∞π".contains(c)))
}

/// The cues of `text`, in one pass over (at most 6 KiB of) it.
pub fn text_cues(text: &str) -> TextCues {
    let hay = scan_region(text);
    let index = index();
    let (mut strong, mut soft, mut code_task, mut light_task) = (false, false, false, false);
    // No list of the words: most hit no cue, and a phrase's further words are read ahead from a
    // copy of the iterator (collecting them was 40 % of the classifier's instructions).
    let mut ws = words(&hay);
    while let Some(w) = ws.next() {
        let Some(phrases) = index.get(w) else {
            continue;
        };
        for (phrase, kind) in phrases {
            // `phrase[0]` is `w`, the index key.
            if phrase[1..].iter().copied().eq(ws.clone().take(phrase.len() - 1)) {
                match kind {
                    Kind::Strong => strong = true,
                    Kind::Soft => soft = true,
                    Kind::Code => code_task = true,
                    Kind::Light => light_task = true,
                }
            }
        }
    }
    let reasoning = if strong || has_math_notation(&hay) {
        Reasoning::Strong
    } else if soft {
        Reasoning::Soft
    } else {
        Reasoning::None
    };
    TextCues {
        reasoning,
        code_task,
        light_task,
    }
}

/// Whether `text` asks for reasoning at all (what [`RequestTraits::reasoning_cues`] holds). The
/// proxy applies it to the last user text: system prompts often carry boilerplate such as "think
/// step by step" whatever the task.
pub fn has_reasoning_cues(text: &str) -> bool {
    text_cues(text).reasoning != Reasoning::None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn math_notation_matches_a_char_scan() {
        // The previous implementation, one char at a time.
        let reference = |hay: &str| {
            let mut prev = ' ';
            let mut chars = hay.chars().peekable();
            while let Some(c) = chars.next() {
                if !c.is_ascii() && "∫∑∏√≤≥≠∀∃∈∞π".contains(c) {
                    return true;
                }
                if c == '^' && (prev.is_alphanumeric() || prev == ')') {
                    if let Some(&next) = chars.peek() {
                        if next.is_alphanumeric() || next == '(' {
                            return true;
                        }
                    }
                }
                prev = c;
            }
            false
        };
        for t in [
            "",
            "^",
            "x^2",
            "x^",
            "^2",
            "(a+b)^(n)",
            "x^^2",
            "x ^2",
            "é^é",
            "2^é",
            "a^ b",
            "∑ i",
            "≤",
            "no math here",
            "déjà vu ^ no",
            "x^-1",
            ")^(",
            "東京^2",
        ] {
            assert_eq!(has_math_notation(t), reference(t), "{t:?}");
        }
    }

    #[test]
    fn words_split_like_a_char_predicate() {
        let reference = |t: &str| -> Vec<String> {
            t.split(|c: char| !(c.is_alphanumeric() || c == '+'))
                .filter(|w| !w.is_empty())
                .map(String::from)
                .collect()
        };
        for t in [
            "",
            "  ",
            "step-by-step, please: c++ & rust!",
            "“prove” it — déjà vu, naïve café; 東京 is 2x faster",
            "trailing word",
            "é",
            "x^2 + y^2 = z^2",
        ] {
            let got: Vec<String> = words(t).map(String::from).collect();
            assert_eq!(got, reference(t), "{t}");
        }
    }

    #[test]
    fn reasoning_cues_by_strength() {
        let cases = [
            ("Prove that there are infinitely many primes.", Reasoning::Strong),
            ("Solve it step by step.", Reasoning::Strong),
            ("Walk me through it step-by-step", Reasoning::Strong),
            ("Derive the closed form.", Reasoning::Strong),
            ("Think carefully before answering.", Reasoning::Strong),
            ("What is the probability of two sixes?", Reasoning::Strong),
            ("Find x if x^2 = 9", Reasoning::Strong),
            ("Show that √2 is irrational", Reasoning::Strong),
            ("Analyze this quarterly report", Reasoning::Soft),
            ("Please analyse the logs", Reasoning::Soft),
            ("Explain why the build is slow", Reasoning::Soft),
            ("Compare Rust and Go; what are the trade-offs?", Reasoning::Soft),
            ("What's the capital of France?", Reasoning::None),
            ("Write a poem about the sea.", Reasoning::None),
            // Whole words only: "approve" is not "prove", "proofread" not "proof".
            ("Please approve the invoice and proofread the memo.", Reasoning::None),
            ("Use the Google Analytics export.", Reasoning::None),
            ("", Reasoning::None),
        ];
        for (text, want) in cases {
            assert_eq!(text_cues(text).reasoning, want, "{text}");
            assert_eq!(has_reasoning_cues(text), want != Reasoning::None, "{text}");
        }
    }

    #[test]
    fn phrases_match_whole_words_only() {
        let code = |t: &str| text_cues(t).code_task;
        assert!(code("use c++ here") && code("in C++."));
        assert!(!code("a c here"));
        assert!(code("any bug?") && !code("debugger") && !code("humbug"));
        assert!(code("(regex)") && code("«SQL»"));
        // Hyphens and spaces are interchangeable inside a phrase.
        assert_eq!(text_cues("step-by-step").reasoning, Reasoning::Strong);
        // A phrase cut short by the end of the text does not match.
        assert_eq!(text_cues("go step by").reasoning, Reasoning::None);
        assert_eq!(text_cues("go step by step").reasoning, Reasoning::Strong);
        assert_eq!(text_cues("trade off").reasoning, Reasoning::Soft);
        assert_eq!(text_cues(""), TextCues::default());
    }

    #[test]
    fn math_notation() {
        assert!(has_math_notation("x^2 + 1"));
        assert!(has_math_notation("(a+b)^(n)"));
        assert!(has_math_notation("∑ i"));
        assert!(!has_math_notation("press ^ to go up"));
        assert!(!has_math_notation("^^"));
    }

    #[test]
    fn code_and_light_tasks() {
        let code_task = |t: &str| text_cues(t).code_task;
        let light_task = |t: &str| text_cues(t).light_task;
        assert!(code_task("Write a SQL query for the top customers"));
        assert!(code_task("Write a regex for phone numbers"));
        assert!(code_task("write a Dockerfile"));
        assert!(!code_task("Write a poem about rain"));
        assert!(!code_task("Give me a quick recap of the meeting"));
        assert!(light_task("Summarize this email"));
        assert!(light_task("Translate to German"));
        assert!(light_task("TL;DR please"));
        assert!(!light_task("Design a payments ledger"));
    }

    #[test]
    fn long_texts_are_scanned_at_both_ends() {
        let filler = "lorem ipsum ".repeat(5000);
        assert!(has_reasoning_cues(&format!("Prove this. {filler}")));
        assert!(has_reasoning_cues(&format!("{filler} Prove this.")));
        // A cue buried in the middle of a long paste is not an instruction.
        let half = "lorem ipsum ".repeat(2500);
        assert!(!has_reasoning_cues(&format!("{half} prove {half}")));
    }

    #[test]
    fn from_text_fills_the_traits() {
        let t = RequestTraits::from_text("You are terse.", "Prove it.\n```\nx\n```");
        assert_eq!(t.system_chars, 14);
        assert_eq!(t.est_prompt_tokens, (14 + 19_u64).div_ceil(4));
        assert!(t.has_code && t.reasoning_cues && !t.tools && !t.images);
        assert_eq!((t.turns, t.last_user_text.as_str()), (1, "Prove it.\n```\nx\n```"));
        assert_eq!(estimate_tokens(0), 0);
        assert_eq!(estimate_tokens(5), 2);
    }
}
