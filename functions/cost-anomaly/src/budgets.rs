//! What each configured budget should look like against what Budgets holds (pure): the drift
//! list the run reports, and fixes unless `dry_run`.

use serde::Serialize;

use crate::config::{BudgetSpec, Threshold};
use crate::port::{cost_filters, ObservedBudget, ObservedNotification};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "drift", rename_all = "snake_case")]
pub enum Drift {
    /// The budget does not exist: created with every notification.
    Missing,
    /// The limit differs: updated.
    LimitDiffers { have: Option<f64>, want: f64 },
    /// The env filter differs: updated with the limit.
    FilterDiffers { have: String, want: String },
    /// A wanted notification is absent: created, subscribed to the topic.
    NotificationMissing { kind: String, percent: f64 },
    /// The notification exists but the topic is not subscribed: subscribed.
    SubscriberMissing { kind: String, percent: f64 },
    /// Reported only: subscribers could not be read (the check is incomplete).
    SubscribersUnknown { kind: String, percent: f64 },
    /// Reported only: a notification nobody configured here (left alone).
    Unmanaged { kind: String, percent: f64 },
}

impl Drift {
    /// Whether the run changes something for it.
    pub fn fixable(&self) -> bool {
        !matches!(
            self,
            Drift::SubscribersUnknown { .. } | Drift::Unmanaged { .. }
        )
    }
}

fn same(n: &ObservedNotification, t: &Threshold) -> bool {
    n.kind.eq_ignore_ascii_case(t.kind.as_str())
        && (n.threshold - t.percent).abs() < 1e-6
        && n.threshold_type.eq_ignore_ascii_case("PERCENTAGE")
        && n.comparison.eq_ignore_ascii_case("GREATER_THAN")
}

pub fn plan(
    spec: &BudgetSpec,
    thresholds: &[Threshold],
    topic: &str,
    tag_key: &str,
    observed: Option<&ObservedBudget>,
) -> Vec<Drift> {
    let Some(o) = observed else {
        return vec![Drift::Missing];
    };
    let mut out = vec![];
    if o.limit.is_none_or(|l| (l - spec.limit).abs() > 0.005) {
        out.push(Drift::LimitDiffers {
            have: o.limit,
            want: spec.limit,
        });
    }
    let want_filters = cost_filters(spec, tag_key);
    if o.cost_filters != want_filters {
        out.push(Drift::FilterDiffers {
            have: format!("{:?}", o.cost_filters),
            want: format!("{want_filters:?}"),
        });
    }
    for t in thresholds {
        let (kind, percent) = (t.kind.as_str().to_string(), t.percent);
        match o.notifications.iter().find(|n| same(n, t)) {
            None => out.push(Drift::NotificationMissing { kind, percent }),
            Some(n) => match &n.subscribers {
                None => out.push(Drift::SubscribersUnknown { kind, percent }),
                Some(s) if !s.iter().any(|a| a == topic) => {
                    out.push(Drift::SubscriberMissing { kind, percent })
                }
                Some(_) => {}
            },
        }
    }
    for n in &o.notifications {
        if !thresholds.iter().any(|t| same(n, t)) {
            out.push(Drift::Unmanaged {
                kind: n.kind.clone(),
                percent: n.threshold,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_thresholds;

    fn spec() -> BudgetSpec {
        BudgetSpec {
            name: "prod".into(),
            limit: 1000.0,
            env: Some("prod".into()),
        }
    }

    fn n(kind: &str, t: f64, subs: Option<Vec<&str>>) -> ObservedNotification {
        ObservedNotification {
            kind: kind.into(),
            comparison: "GREATER_THAN".into(),
            threshold: t,
            threshold_type: "PERCENTAGE".into(),
            subscribers: subs.map(|s| s.into_iter().map(String::from).collect()),
        }
    }

    #[test]
    fn in_place_budget_has_no_drift() {
        let o = ObservedBudget {
            limit: Some(1000.0),
            cost_filters: cost_filters(&spec(), "env"),
            notifications: vec![
                n("ACTUAL", 80.0, Some(vec!["t"])),
                n("ACTUAL", 100.0, Some(vec!["t", "x"])),
                n("FORECASTED", 120.0, Some(vec!["t"])),
            ],
        };
        assert_eq!(
            plan(&spec(), &default_thresholds(), "t", "env", Some(&o)),
            vec![]
        );
    }

    #[test]
    fn every_kind_of_drift() {
        assert_eq!(
            plan(&spec(), &default_thresholds(), "t", "env", None),
            vec![Drift::Missing]
        );
        let o = ObservedBudget {
            limit: Some(900.0),
            cost_filters: Default::default(),
            notifications: vec![
                n("ACTUAL", 80.0, Some(vec!["other"])),
                n("ACTUAL", 100.0, None),
                n("ACTUAL", 50.0, Some(vec![])),
            ],
        };
        let d = plan(&spec(), &default_thresholds(), "t", "env", Some(&o));
        assert_eq!(
            d[0],
            Drift::LimitDiffers {
                have: Some(900.0),
                want: 1000.0
            }
        );
        assert!(matches!(d[1], Drift::FilterDiffers { .. }));
        assert_eq!(
            d[2],
            Drift::SubscriberMissing {
                kind: "ACTUAL".into(),
                percent: 80.0
            }
        );
        assert_eq!(
            d[3],
            Drift::SubscribersUnknown {
                kind: "ACTUAL".into(),
                percent: 100.0
            }
        );
        assert_eq!(
            d[4],
            Drift::NotificationMissing {
                kind: "FORECASTED".into(),
                percent: 120.0
            }
        );
        assert_eq!(
            d[5],
            Drift::Unmanaged {
                kind: "ACTUAL".into(),
                percent: 50.0
            }
        );
        assert_eq!(d.iter().filter(|x| x.fixable()).count(), 4);
    }
}
