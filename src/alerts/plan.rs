//! Which alerts a wait brings, and when: pure, time is always an argument.
//!
//! The live runtime asks [`Plan::schedule`] when a wait starts, arms a timer for each entry,
//! cancels the rest when the agent answers, and asks [`Plan::resolved`] at the answer.
//! [`Plan::disposition`] decides at submit time whether a due alert is still worth sending.

use crate::time::Millis;

use super::notice::Kind;

/// The alert timing rules, compiled from `rules/alerts.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Warning at this many thousandths of the deadline; `None` = no warnings.
    pub warning_permille: Option<u32>,
    /// Escalation at this many thousandths of the deadline (3000 = 3×); `None` = none.
    pub escalation_permille: Option<u32>,
    /// Whether an answer after a breach sends a `resolved` alert.
    pub resolved: bool,
    /// A due alert older than this when it is submitted is recorded but not sent.
    pub stale_after_ms: i64,
}

impl Default for Plan {
    /// Breach at the deadline, escalation at 3×, no warning, no resolved, stale after 10 min.
    fn default() -> Self {
        Self {
            warning_permille: None,
            escalation_permille: Some(3000),
            resolved: false,
            stale_after_ms: 600_000,
        }
    }
}

/// What to do with an alert that is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Queue it for delivery.
    Send,
    /// Too old (e.g. found while catching up after an outage): record it, do not send.
    Stale,
}

impl Plan {
    /// The alerts a wait that started at `start` with this deadline will bring if nobody
    /// answers, in time order: `(kind, due_at)`.
    pub fn schedule(&self, start: Millis, deadline_ms: i64) -> Vec<(Kind, Millis)> {
        let at = |permille: u32| start + deadline_ms * i64::from(permille) / 1000;
        let mut out = Vec::with_capacity(3);
        if let Some(w) = self.warning_permille {
            out.push((Kind::Warning, at(w)));
        }
        out.push((Kind::Breach, start + deadline_ms));
        if let Some(e) = self.escalation_permille {
            out.push((Kind::Escalation, at(e)));
        }
        out
    }

    /// The alerts of [`Plan::schedule`] that fall due in `(after, upto]`: what a runtime that
    /// last looked at `after` must fire now.
    pub fn due_between(
        &self,
        start: Millis,
        deadline_ms: i64,
        after: Millis,
        upto: Millis,
    ) -> Vec<(Kind, Millis)> {
        self.schedule(start, deadline_ms).into_iter().filter(|&(_, t)| t > after && t <= upto).collect()
    }

    /// When the agent answers at `answered_at`: the `resolved` alert, if the rules want one
    /// and the wait had breached (answered after its deadline).
    pub fn resolved(&self, start: Millis, deadline_ms: i64, answered_at: Millis) -> Option<(Kind, Millis)> {
        (self.resolved && answered_at > start + deadline_ms).then_some((Kind::Resolved, answered_at))
    }

    /// Whether an alert due at `due_at` and submitted at `now` is sent or only recorded.
    pub fn disposition(&self, due_at: Millis, now: Millis) -> Disposition {
        if now - due_at > self.stale_after_ms { Disposition::Stale } else { Disposition::Send }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        let full = Plan { warning_permille: Some(750), ..Plan::default() };
        let none = Plan { warning_permille: None, escalation_permille: None, ..Plan::default() };
        type Case<'a> = (Plan, i64, &'a [(Kind, Millis)]);
        let cases: [Case<'_>; 4] = [
            (Plan::default(), 20_000, &[(Kind::Breach, 120_000), (Kind::Escalation, 160_000)]),
            (full, 20_000, &[(Kind::Warning, 115_000), (Kind::Breach, 120_000), (Kind::Escalation, 160_000)]),
            (full, 60_000, &[(Kind::Warning, 145_000), (Kind::Breach, 160_000), (Kind::Escalation, 280_000)]),
            (none, 20_000, &[(Kind::Breach, 120_000)]),
        ];
        for (plan, deadline, want) in cases {
            assert_eq!(plan.schedule(100_000, deadline), want, "{plan:?} {deadline}");
        }
    }

    #[test]
    fn due_between_is_half_open() {
        let p = Plan { warning_permille: Some(750), ..Plan::default() };
        let kinds = |a, b| p.due_between(0, 20_000, a, b).into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(kinds(0, 14_999), []);
        assert_eq!(kinds(0, 15_000), [Kind::Warning]);
        assert_eq!(kinds(15_000, 20_000), [Kind::Breach]);
        assert_eq!(kinds(0, 100_000), [Kind::Warning, Kind::Breach, Kind::Escalation]);
        assert_eq!(kinds(60_000, 100_000), []);
    }

    #[test]
    fn resolved_only_after_a_breach_and_when_wanted() {
        let on = Plan { resolved: true, ..Plan::default() };
        let cases = [
            (on, 25_000, Some((Kind::Resolved, 25_000))),
            (on, 20_000, None),
            (on, 5_000, None),
            (Plan::default(), 25_000, None),
        ];
        for (plan, answered, want) in cases {
            assert_eq!(plan.resolved(0, 20_000, answered), want, "{answered}");
        }
    }

    #[test]
    fn staleness() {
        let p = Plan::default();
        let cases = [
            (0, 0, Disposition::Send),
            (0, 600_000, Disposition::Send),
            (0, 600_001, Disposition::Stale),
            (1_000, 0, Disposition::Send),
        ];
        for (due, now, want) in cases {
            assert_eq!(p.disposition(due, now), want, "due {due} now {now}");
        }
    }
}
