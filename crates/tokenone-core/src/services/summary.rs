//! Read models of the call log: the 30-day burn / savings roll-up and the recent upstream picks.
//! Summaries read the incrementally maintained daily roll-ups, never the raw call rows.

use super::projects::{ProjectAccess, ProjectService};
use crate::ids::ProjectId;
use crate::model::{CallRecord, RollupRow, User};
use crate::repo::Store;
use crate::time::now_ms;
use crate::{Error, Result};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub burn_tokens: i64,
    pub savings_tokens: i64,
    pub pass_back_tokens: i64,
    pub uncollected_tokens: i64,
}

impl Totals {
    fn add(&mut self, r: &RollupRow) {
        self.calls += r.calls;
        self.input_tokens += r.input_tokens;
        self.output_tokens += r.output_tokens;
        self.burn_tokens += r.burn_tokens;
        self.savings_tokens += r.savings_tokens;
        self.pass_back_tokens += r.pass_back_tokens;
        self.uncollected_tokens += r.uncollected_tokens;
    }
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub from: String,
    pub to: String,
    pub days: u32,
    pub totals: Totals,
    /// Every day of the window, oldest first (days without calls included, at zero).
    pub by_day: Vec<(String, Totals)>,
    /// (requested, delivered) → totals, most calls first.
    pub by_model: Vec<((String, String), Totals)>,
}

#[derive(Clone)]
pub struct SummaryService {
    store: Arc<dyn Store>,
    projects: ProjectService,
}

impl SummaryService {
    pub fn new(store: Arc<dyn Store>, projects: ProjectService) -> Self {
        SummaryService { store, projects }
    }

    /// `GET /api/tokenone/summary`: the caller's visible projects (or one of them).
    pub async fn summary(&self, user: &User, days: u32, project: Option<ProjectId>, mode: &str) -> Result<Summary> {
        if !(1..=365).contains(&days) {
            return Err(Error::invalid("`days` must be 1 to 365"));
        }
        if !matches!(mode, "live" | "dev") {
            return Err(Error::invalid("`mode` must be live or dev"));
        }
        let visible: HashSet<String> = match project {
            Some(p) => {
                let access = self.projects.access(user, p).await?;
                [access.id().to_string()].into()
            }
            None => self
                .projects
                .list(user, true)
                .await?
                .into_iter()
                .map(|v| v.project.id.to_string())
                .collect(),
        };
        let now = now_ms();
        let day_ms = 86_400_000i64;
        let first_day = now - (days as i64 - 1) * day_ms;
        let from = crate::time::format_ms(first_day)[..10].to_string();
        let to = crate::time::format_ms(now)[..10].to_string();
        let rows = self.store.rollups(Some(user.tenant_id), &from).await?;
        let mut totals = Totals::default();
        let mut by_day: BTreeMap<String, Totals> = (0..days as i64)
            .map(|i| {
                (
                    crate::time::format_ms(first_day + i * day_ms)[..10].to_string(),
                    Totals::default(),
                )
            })
            .collect();
        let mut by_model: BTreeMap<(String, String), Totals> = BTreeMap::new();
        for r in rows
            .iter()
            .filter(|r| r.mode == mode && visible.contains(&r.project_id) && r.day <= to)
        {
            totals.add(r);
            by_day.entry(r.day.clone()).or_default().add(r);
            by_model
                .entry((r.requested_model.clone(), r.delivered_model.clone()))
                .or_default()
                .add(r);
        }
        let mut by_model: Vec<_> = by_model.into_iter().collect();
        by_model.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then_with(|| a.0.cmp(&b.0)));
        Ok(Summary {
            from,
            to,
            days,
            totals,
            by_day: by_day.into_iter().collect(),
            by_model,
        })
    }

    /// `GET /api/tokenone/projects/:id/recent-upstream-picks`, newest first.
    pub async fn recent_picks(&self, access: &ProjectAccess, limit: i64) -> Result<Vec<CallRecord>> {
        if !(1..=100).contains(&limit) {
            return Err(Error::invalid("`limit` must be 1 to 100"));
        }
        super::workspace::require_hot(access)?;
        let calls = self.store.recent_calls(access.id(), limit).await?;
        Ok(calls)
    }
}
