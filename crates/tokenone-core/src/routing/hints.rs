//! Client hints: `x-tokenone-route: pin` (deliver exactly what was asked, natively) and
//! `x-tokenone-min-tier: <tier>` (do not route below this tier).

use super::classify::Classification;
use crate::tiers::Tier;

pub const ROUTE_HEADER: &str = "x-tokenone-route";
pub const MIN_TIER_HEADER: &str = "x-tokenone-min-tier";

/// The hints of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hints {
    /// Deliver the native path; no classification, no plan.
    pub pin: bool,
    /// The lowest tier the client accepts.
    pub min_tier: Option<Tier>,
}

impl Hints {
    /// From the two header values (absent → `None`). Values are trimmed and case-insensitive.
    /// `x-tokenone-route` accepts `pin` and `auto` (the default: route); anything else, or a
    /// tier name that does not exist, is an error to answer with 400.
    pub fn parse(route: Option<&str>, min_tier: Option<&str>) -> Result<Hints, String> {
        let pin = match route.map(|r| r.trim().to_ascii_lowercase()) {
            None => false,
            Some(r) if r == "pin" => true,
            Some(r) if r == "auto" => false,
            Some(r) => return Err(format!("invalid {ROUTE_HEADER} `{r}`: expected `pin` or `auto`")),
        };
        let min_tier = match min_tier.map(|t| t.trim().to_ascii_lowercase()) {
            None => None,
            Some(t) => Some(
                t.parse::<Tier>()
                    .map_err(|_| format!("invalid {MIN_TIER_HEADER} `{t}`: expected `cheap`, `balanced` or `heavy`"))?,
            ),
        };
        Ok(Hints { pin, min_tier })
    }

    /// The classification with the hints applied. `pin` needs the requested tier (the caller
    /// delivers the native path and does not plan); `min_tier` raises `needed`, but never above
    /// the requested tier: a hint cannot buy a better model than the one asked for.
    pub fn apply(&self, mut c: Classification, requested: Tier) -> Classification {
        if self.pin {
            return Classification {
                needed: requested,
                reasons: vec!["pinned"],
            };
        }
        if let Some(min) = self.min_tier {
            let floor = min.min(requested);
            if floor > c.needed {
                c.needed = floor;
                c.reasons.push("min_tier_hint");
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Tier::*;

    #[test]
    fn parse_headers() {
        let ok = |r, m| Hints::parse(r, m).unwrap();
        assert_eq!(ok(None, None), Hints::default());
        assert_eq!(
            ok(Some("pin"), None),
            Hints {
                pin: true,
                min_tier: None
            }
        );
        assert!(ok(Some(" PIN "), None).pin);
        assert!(!ok(Some("auto"), None).pin);
        assert_eq!(ok(None, Some("balanced")).min_tier, Some(Balanced));
        assert_eq!(ok(None, Some("Heavy")).min_tier, Some(Heavy));
        assert_eq!(
            ok(Some("pin"), Some("cheap")),
            Hints {
                pin: true,
                min_tier: Some(Cheap)
            }
        );

        let err = Hints::parse(Some("pinned"), None).unwrap_err();
        assert_eq!(err, "invalid x-tokenone-route `pinned`: expected `pin` or `auto`");
        let err = Hints::parse(None, Some("extreme")).unwrap_err();
        assert_eq!(
            err,
            "invalid x-tokenone-min-tier `extreme`: expected `cheap`, `balanced` or `heavy`"
        );
        assert!(Hints::parse(Some(""), None).is_err());
        assert!(Hints::parse(None, Some("")).is_err());
    }

    fn c(needed: Tier) -> Classification {
        Classification {
            needed,
            reasons: vec!["short_prompt"],
        }
    }

    #[test]
    fn apply_hints() {
        let none = Hints::default();
        assert_eq!(none.apply(c(Cheap), Heavy), c(Cheap));

        let pin = Hints {
            pin: true,
            min_tier: Some(Cheap),
        };
        let got = pin.apply(c(Cheap), Balanced);
        assert_eq!((got.needed, got.reasons), (Balanced, vec!["pinned"]));

        let min = |t| Hints {
            pin: false,
            min_tier: Some(t),
        };
        let got = min(Balanced).apply(c(Cheap), Heavy);
        assert_eq!(
            (got.needed, got.reasons),
            (Balanced, vec!["short_prompt", "min_tier_hint"])
        );
        // Already at or above the floor: unchanged.
        assert_eq!(min(Cheap).apply(c(Balanced), Heavy), c(Balanced));
        assert_eq!(min(Balanced).apply(c(Heavy), Heavy), c(Heavy));
        // A floor above the requested tier stops at the requested tier.
        let got = min(Heavy).apply(c(Cheap), Balanced);
        assert_eq!(
            (got.needed, got.reasons),
            (Balanced, vec!["short_prompt", "min_tier_hint"])
        );
        assert_eq!(min(Heavy).apply(c(Cheap), Cheap), c(Cheap));
    }
}
