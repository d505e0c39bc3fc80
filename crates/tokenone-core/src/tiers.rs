//! Capability tiers and the model tier map (lever `model_tier_map`): exact ids or `*` globs; an
//! exact key wins over patterns, and among matching patterns the longest wins.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::str::FromStr;

/// Ranked `heavy` > `balanced` > `cheap` (derived order: lowest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Cheap,
    Balanced,
    Heavy,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Cheap, Tier::Balanced, Tier::Heavy];
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Cheap => "cheap",
            Tier::Balanced => "balanced",
            Tier::Heavy => "heavy",
        }
    }
    /// One rung up the quality ladder.
    pub fn up(self) -> Option<Tier> {
        match self {
            Tier::Cheap => Some(Tier::Balanced),
            Tier::Balanced => Some(Tier::Heavy),
            Tier::Heavy => None,
        }
    }
}

impl FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cheap" => Ok(Tier::Cheap),
            "balanced" => Ok(Tier::Balanced),
            "heavy" => Ok(Tier::Heavy),
            other => Err(format!("unknown tier `{other}`")),
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `*` matches any run of characters (including none); everything else literally.
///
/// Compares bytes, which is the same as comparing characters: a literal can only match at a
/// character boundary in UTF-8 (a character's first byte is never a continuation byte), and `*`
/// is ASCII. No allocation: this runs for every pattern on every call.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TierMap(pub BTreeMap<String, Tier>);

impl TierMap {
    /// The tier of `model`, or `None` when nothing matches (the proxy answers 404).
    pub fn tier_of(&self, model: &str) -> Option<Tier> {
        if !model.contains('*') {
            if let Some(t) = self.0.get(model) {
                return Some(*t);
            }
        }
        self.0
            .iter()
            .filter(|(k, _)| k.contains('*') && glob_match(k, model))
            .max_by(|(a, _), (b, _)| a.chars().count().cmp(&b.chars().count()).then_with(|| b.cmp(a)))
            .map(|(_, t)| *t)
    }

    /// Whether `model` is a key of the map itself (not only matched by a pattern).
    pub fn is_exact(&self, model: &str) -> bool {
        self.0.contains_key(model) && !model.contains('*')
    }
}

impl Default for TierMap {
    fn default() -> Self {
        use Tier::*;
        let pairs = [
            ("claude-opus-*", Heavy),
            ("claude-opus-4", Heavy),
            ("claude-sonnet-*", Balanced),
            ("claude-sonnet-4", Balanced),
            ("claude-*haiku*", Cheap),
            ("claude-3-5-haiku", Cheap),
            ("gemini-*pro*", Balanced),
            ("gemini-*flash*", Cheap),
            ("*llama*405b*", Heavy),
            ("*llama*70b*", Balanced),
            ("*llama*8b*", Cheap),
            ("deepseek-v3*", Balanced),
            ("deepseek-chat*", Balanced),
            ("o1*", Heavy),
            ("o3*", Heavy),
            ("gpt-4o*", Balanced),
            ("gpt-4o-mini*", Cheap),
            ("deepseek-r1*", Heavy),
        ];
        TierMap(pairs.iter().map(|(k, t)| (k.to_string(), *t)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Tier::*;

    #[test]
    fn globs() {
        assert!(glob_match("gpt-4o*", "gpt-4o"));
        assert!(glob_match("gpt-4o*", "gpt-4o-2024-08-06"));
        assert!(glob_match("*llama*8b*", "llama-3.1-8b-instruct"));
        assert!(glob_match("claude-*haiku*", "claude-3-5-haiku-20241022"));
        assert!(!glob_match("gpt-4o*", "gpt-4"));
        assert!(!glob_match("o1*", "xo1"));
        assert!(glob_match("a*b*c", "abc") && glob_match("a*b*c", "aXbYc") && !glob_match("a*b*c", "acb"));
        assert!(glob_match("é*ü", "éaü") && !glob_match("é*ü", "éaû") && glob_match("*ü*", "ü"));
    }

    /// Globbing over characters, written the obvious way (recursion), to check the byte matcher.
    fn char_glob(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| char_glob(rest, &t[i..])),
            Some((c, rest)) => t.first() == Some(c) && char_glob(rest, &t[1..]),
        }
    }

    proptest::proptest! {
        #[test]
        fn byte_glob_equals_char_glob(pattern in "[aé€*😀]{0,8}", text in "[aé€😀]{0,10}") {
            let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
            proptest::prop_assert_eq!(glob_match(&pattern, &text), char_glob(&p, &t));
        }
    }

    #[test]
    fn seed_map_precedence() {
        let m = TierMap::default();
        let cases = [
            ("claude-opus-4", Some(Heavy)),
            ("claude-opus-4-20250514", Some(Heavy)),
            ("claude-sonnet-4-20250514", Some(Balanced)),
            ("claude-3-5-haiku", Some(Cheap)),
            ("claude-3-5-haiku-latest", Some(Cheap)),
            ("gpt-4o", Some(Balanced)),
            ("gpt-4o-mini", Some(Cheap)), // longest pattern wins over gpt-4o*
            ("gpt-4o-mini-2024-07-18", Some(Cheap)),
            ("o1", Some(Heavy)),
            ("o3-mini", Some(Heavy)),
            ("gemini-1.5-pro", Some(Balanced)),
            ("gemini-1.5-flash", Some(Cheap)),
            ("llama-3.1-405b-instruct", Some(Heavy)),
            ("llama-3.1-70b-instruct", Some(Balanced)),
            ("llama-3.1-8b-instruct", Some(Cheap)),
            ("deepseek-r1", Some(Heavy)),
            ("deepseek-v3", Some(Balanced)),
            ("deepseek-chat", Some(Balanced)),
            ("mistral-large", None),
            ("", None),
        ];
        for (model, want) in cases {
            assert_eq!(m.tier_of(model), want, "{model}");
        }
    }

    #[test]
    fn exact_beats_longer_pattern() {
        let mut m = TierMap::default();
        m.0.insert("gpt-4o-mini-special".into(), Heavy);
        assert_eq!(m.tier_of("gpt-4o-mini-special"), Some(Heavy));
        assert!(m.is_exact("gpt-4o-mini-special"));
        assert!(!m.is_exact("gpt-4o-mini-2024"));
    }

    #[test]
    fn ladder() {
        assert!(Heavy > Balanced && Balanced > Cheap);
        assert_eq!(Cheap.up(), Some(Balanced));
        assert_eq!(Heavy.up(), None);
    }
}
