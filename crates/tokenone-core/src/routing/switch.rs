//! The smart-router switch (`off` / `shadow` / `on` with a rollout percentage), the delivery
//! decision it makes from a plan, and which upstream failures move a call to its fallback.

use super::plan::Plan;
use crate::catalogue::Path;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::str::FromStr;
use uuid::Uuid;

/// The admin switch. Default: `on` (at 100%).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouterMode {
    /// Always the native path.
    Off,
    /// Plan and record the pick, deliver natively.
    Shadow,
    /// Deliver the pick for the rollout share of calls.
    #[default]
    On,
}

impl RouterMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RouterMode::Off => "off",
            RouterMode::Shadow => "shadow",
            RouterMode::On => "on",
        }
    }
}

impl FromStr for RouterMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(RouterMode::Off),
            "shadow" => Ok(RouterMode::Shadow),
            "on" => Ok(RouterMode::On),
            other => Err(format!(
                "unknown router mode `{other}`: expected `off`, `shadow` or `on`"
            )),
        }
    }
}

impl std::fmt::Display for RouterMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a call is in the rollout: the first 8 bytes of SHA-256(call id), mod 100, below
/// `rollout_pct`. Stable per call id on every replica; `0` selects none, `100` and more all.
/// Hashed rather than read off the id, because UUIDv7 ids start with a timestamp.
pub fn rollout_selects(call_id: Uuid, rollout_pct: u8) -> bool {
    if rollout_pct >= 100 {
        return true;
    }
    let digest = Sha256::digest(call_id.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(head) % 100 < u64::from(rollout_pct)
}

/// What one call is delivered on.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub deliver: Path,
    /// Where a retryable failure before the first byte goes; only routed deliveries have one.
    pub fallback: Option<Path>,
    /// The router chose a path other than the native one.
    pub routed: bool,
    /// In shadow mode, the id of the path routing would have delivered on.
    pub shadow_pick: Option<String>,
}

impl Decision {
    /// The native path, untouched by routing: mode `off`, the calls outside the rollout, and
    /// `x-tokenone-route: pin`.
    pub fn native(native: &Path) -> Decision {
        Decision {
            deliver: native.clone(),
            fallback: None,
            routed: false,
            shadow_pick: None,
        }
    }
}

/// The delivery of one call under the switch.
pub fn decide(mode: RouterMode, rollout_pct: u8, call_id: Uuid, plan: &Plan, native: &Path) -> Decision {
    match mode {
        RouterMode::Off => Decision::native(native),
        RouterMode::Shadow => Decision {
            shadow_pick: Some(plan.primary.id.clone()),
            ..Decision::native(native)
        },
        RouterMode::On if rollout_selects(call_id, rollout_pct) => Decision {
            deliver: plan.primary.clone(),
            fallback: plan.fallback.clone(),
            routed: plan.primary.id != native.id,
            shadow_pick: None,
        },
        RouterMode::On => Decision::native(native),
    }
}

/// Whether a failed upstream attempt, before any byte reached the client, may be retried on the
/// fallback: a connect error, a timeout before the first byte, or an upstream 429 or 5xx.
/// The same failures count towards the path's circuit breaker; other 4xx are the request's fault.
pub fn retryable(status: Option<u16>, connect_error: bool, timed_out_before_first_byte: bool) -> bool {
    connect_error || timed_out_before_first_byte || matches!(status, Some(429) | Some(500..=599))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::default_catalogue;

    fn path(id: &str) -> Path {
        default_catalogue().into_iter().find(|p| p.id == id).unwrap()
    }

    fn sample_plan() -> Plan {
        Plan {
            primary: path("openrouter:llama-3.1-8b-instruct"),
            fallback: Some(path("fireworks:deepseek-v3")),
            candidates_considered: 11,
        }
    }

    #[test]
    fn modes_parse_and_print() {
        for m in [RouterMode::Off, RouterMode::Shadow, RouterMode::On] {
            assert_eq!(m.as_str().parse::<RouterMode>(), Ok(m));
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
        assert_eq!(RouterMode::default(), RouterMode::On);
        assert!("ON".parse::<RouterMode>().is_err());
    }

    #[test]
    fn rollout_is_stable_and_bounded() {
        let id = Uuid::now_v7();
        for pct in [0u8, 1, 37, 99, 100, 255] {
            let first = rollout_selects(id, pct);
            assert!((0..10).all(|_| rollout_selects(id, pct) == first));
        }
        assert!((0..1000).all(|_| !rollout_selects(Uuid::new_v4(), 0)));
        assert!((0..1000).all(|_| rollout_selects(Uuid::new_v4(), 100)));
        // Fixed ids give fixed answers on every replica and every release.
        let fixed = Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001);
        let bucket = (1..=100u8).find(|p| rollout_selects(fixed, *p)).unwrap();
        assert!((bucket..=100).all(|p| rollout_selects(fixed, p)));
        assert!((0..bucket).all(|p| !rollout_selects(fixed, p)));
    }

    #[test]
    fn rollout_proportion_within_two_points() {
        // UUIDv7 ids minted back to back share their leading bytes: the hash must still spread.
        let ids: Vec<Uuid> = (0..10_000).map(|_| Uuid::now_v7()).collect();
        for pct in [10u8, 25, 50, 90] {
            let selected = ids.iter().filter(|id| rollout_selects(**id, pct)).count();
            let share = selected as f64 / ids.len() as f64 * 100.0;
            assert!((share - f64::from(pct)).abs() <= 2.0, "{pct}%: {share:.2}%");
        }
        // A larger percentage selects a superset.
        assert!(ids
            .iter()
            .all(|id| !rollout_selects(*id, 25) || rollout_selects(*id, 50)));
    }

    #[test]
    fn decisions_per_mode() {
        let plan = sample_plan();
        let native = path("anthropic:claude-sonnet-4");
        let id = Uuid::now_v7();

        let off = decide(RouterMode::Off, 100, id, &plan, &native);
        assert_eq!(off, Decision::native(&native));

        let shadow = decide(RouterMode::Shadow, 100, id, &plan, &native);
        assert_eq!(shadow.deliver.id, "anthropic:claude-sonnet-4");
        assert!(!shadow.routed && shadow.fallback.is_none());
        assert_eq!(shadow.shadow_pick.as_deref(), Some("openrouter:llama-3.1-8b-instruct"));

        let on = decide(RouterMode::On, 100, id, &plan, &native);
        assert_eq!(on.deliver.id, "openrouter:llama-3.1-8b-instruct");
        assert_eq!(
            on.fallback.as_ref().map(|p| p.id.as_str()),
            Some("fireworks:deepseek-v3")
        );
        assert!(on.routed && on.shadow_pick.is_none());

        // On, outside the rollout: as off.
        assert_eq!(decide(RouterMode::On, 0, id, &plan, &native), Decision::native(&native));

        // On, and the pick is the native path itself: delivered, but not routed.
        let native_plan = Plan {
            primary: native.clone(),
            fallback: None,
            candidates_considered: 0,
        };
        let on = decide(RouterMode::On, 100, id, &native_plan, &native);
        assert_eq!(
            (on.deliver.id.as_str(), on.routed),
            ("anthropic:claude-sonnet-4", false)
        );
    }

    #[test]
    fn on_follows_the_rollout() {
        let plan = sample_plan();
        let native = path("anthropic:claude-sonnet-4");
        for _ in 0..200 {
            let id = Uuid::new_v4();
            let d = decide(RouterMode::On, 30, id, &plan, &native);
            assert_eq!(d.routed, rollout_selects(id, 30));
            let want = if d.routed { &plan.primary } else { &native };
            assert_eq!(&d.deliver, want);
        }
    }

    #[test]
    fn retryable_failures() {
        let cases = [
            (None, true, false, true),
            (None, false, true, true),
            (Some(429), false, false, true),
            (Some(500), false, false, true),
            (Some(502), false, false, true),
            (Some(503), false, false, true),
            (Some(599), false, false, true),
            (Some(400), false, false, false),
            (Some(401), false, false, false),
            (Some(404), false, false, false),
            (Some(413), false, false, false),
            (Some(200), false, false, false),
            (None, false, false, false),
        ];
        for (status, connect, timeout, want) in cases {
            assert_eq!(
                retryable(status, connect, timeout),
                want,
                "{status:?} {connect} {timeout}"
            );
        }
    }
}
