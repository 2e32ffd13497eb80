//! Rule diff: a bucket's lifecycle rules against the policy's. Rules whose ID starts with the
//! policy's `id_prefix` are the suite's; every other rule is foreign, reported and kept. Pure.

use serde::{Deserialize, Serialize};

use crate::policy::{Policy, RuleSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// The policy's rule is not on the bucket.
    Missing,
    /// The bucket has the rule's ID with other settings.
    Different,
    /// The bucket has a suite-owned ID the policy no longer has.
    Unexpected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleDrift {
    pub id: String,
    pub kind: DriftKind,
    pub details: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleDiff {
    pub drift: Vec<RuleDrift>,
    pub in_sync: Vec<String>,
    /// IDs of rules the suite does not own: kept as they are on apply.
    pub foreign: Vec<String>,
    pub warnings: Vec<String>,
}

impl RuleDiff {
    pub fn is_in_sync(&self) -> bool {
        self.drift.is_empty()
    }
}

fn differences(want: &RuleSpec, have: &RuleSpec) -> Vec<String> {
    let mut d = Vec::new();
    if want.enabled != have.enabled {
        d.push(format!(
            "status: want {}, have {}",
            if want.enabled { "Enabled" } else { "Disabled" },
            if have.enabled { "Enabled" } else { "Disabled" }
        ));
    }
    if want.prefix != have.prefix {
        d.push(format!(
            "prefix: want {:?}, have {:?}",
            want.prefix, have.prefix
        ));
    }
    let mut ht = have.tags.clone();
    ht.sort();
    if want.tags != ht {
        let show = |t: &[crate::policy::Tag]| {
            t.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        d.push(format!(
            "filter tags: want [{}], have [{}]",
            show(&want.tags),
            show(&ht)
        ));
    }
    let mut htr = have.transitions.clone();
    htr.sort();
    if want.transitions != htr {
        let show = |t: &[crate::policy::Transition]| {
            t.iter()
                .map(|x| format!("{}d→{}", x.days, x.storage_class))
                .collect::<Vec<_>>()
                .join(", ")
        };
        d.push(format!(
            "transitions: want [{}], have [{}]",
            show(&want.transitions),
            show(&htr)
        ));
    }
    if want.expiration_days != have.expiration_days {
        d.push(format!(
            "expiration days: want {:?}, have {:?}",
            want.expiration_days, have.expiration_days
        ));
    }
    if want.noncurrent_expiration_days != have.noncurrent_expiration_days {
        d.push(format!(
            "noncurrent version expiration days: want {:?}, have {:?}",
            want.noncurrent_expiration_days, have.noncurrent_expiration_days
        ));
    }
    for o in &have.other {
        d.push(format!("not in the policy: {o}"));
    }
    d
}

fn prefixes_overlap(a: &str, b: &str) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Compares the rules read from a bucket with the policy's rendered rules.
pub fn diff_rules(policy: &Policy, observed: &[RuleSpec]) -> RuleDiff {
    let desired = policy.render();
    let mut out = RuleDiff::default();
    for want in &desired {
        match observed.iter().find(|h| h.id == want.id) {
            None => out.drift.push(RuleDrift {
                id: want.id.clone(),
                kind: DriftKind::Missing,
                details: vec!["not on the bucket".into()],
            }),
            Some(have) => {
                let d = differences(want, have);
                if d.is_empty() {
                    out.in_sync.push(want.id.clone());
                } else {
                    out.drift.push(RuleDrift {
                        id: want.id.clone(),
                        kind: DriftKind::Different,
                        details: d,
                    });
                }
            }
        }
    }
    for have in observed {
        if policy.owns(&have.id) {
            if !desired.iter().any(|w| w.id == have.id) {
                out.drift.push(RuleDrift {
                    id: have.id.clone(),
                    kind: DriftKind::Unexpected,
                    details: vec![
                        "carries the suite's ID prefix but is not in the policy: removed on apply"
                            .into(),
                    ],
                });
            }
            continue;
        }
        out.foreign.push(have.id.clone());
        // A foreign rule acting on a managed prefix without the managed tag ignores the
        // exceptions: a legal hold does not protect an object from it.
        if !have.enabled {
            continue;
        }
        let managed = policy.managed_tag();
        for want in &desired {
            if prefixes_overlap(&have.prefix, &want.prefix) && !have.tags.contains(managed) {
                out.warnings.push(format!(
                    "foreign rule {:?} (prefix {:?}) also acts on {:?} without the tag {managed}: objects with an exception tag are not protected from it",
                    have.id, have.prefix, want.prefix
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicyDoc, Tag, Transition};

    fn policy() -> Policy {
        Policy::validate(PolicyDoc::playbook()).unwrap()
    }

    fn foreign() -> RuleSpec {
        RuleSpec {
            id: "team-tmp-cleanup".into(),
            enabled: true,
            prefix: "tmp/".into(),
            tags: vec![],
            transitions: vec![],
            expiration_days: Some(1),
            noncurrent_expiration_days: None,
            other: vec![],
        }
    }

    #[test]
    fn empty_bucket_misses_every_rule() {
        let d = diff_rules(&policy(), &[]);
        assert_eq!(d.drift.len(), 2);
        assert!(d.drift.iter().all(|x| x.kind == DriftKind::Missing));
    }

    #[test]
    fn rendered_rules_plus_a_foreign_one_are_in_sync() {
        let mut observed = policy().render();
        // Order on the bucket does not matter, nor the order of transitions.
        observed.reverse();
        observed[1].transitions.reverse();
        observed.push(foreign());
        let d = diff_rules(&policy(), &observed);
        assert!(d.is_in_sync(), "{d:?}");
        assert_eq!(d.foreign, vec!["team-tmp-cleanup"]);
        assert_eq!(d.in_sync.len(), 2);
        assert!(d.warnings.is_empty());
    }

    #[test]
    fn every_difference_is_named() {
        let mut observed = policy().render();
        observed[0].transitions[1] = Transition {
            days: 180,
            storage_class: "GLACIER".into(),
        };
        observed[0].tags = vec![];
        observed[1].enabled = false;
        observed[1].noncurrent_expiration_days = None;
        observed[1].other = vec!["AbortIncompleteMultipartUpload after 7 days".into()];
        let mut stray = policy().render()[1].clone();
        stray.id = "playbook-lifecycle-old".into();
        observed.push(stray);
        let d = diff_rules(&policy(), &observed);
        assert_eq!(d.drift.len(), 3, "{d:?}");
        let a = &d.drift[0];
        assert_eq!(a.kind, DriftKind::Different);
        assert!(a.details.iter().any(|x| x.starts_with("transitions")));
        assert!(a.details.iter().any(|x| x.starts_with("filter tags")));
        let e = &d.drift[1];
        assert_eq!(e.details.len(), 3, "{e:?}");
        assert_eq!(d.drift[2].kind, DriftKind::Unexpected);
    }

    #[test]
    fn foreign_rule_on_a_managed_prefix_is_warned_about() {
        let mut f = foreign();
        f.prefix = "attachments/".into();
        let d = diff_rules(&policy(), &[f.clone()]);
        assert_eq!(d.warnings.len(), 1, "{d:?}");
        f.tags = vec![Tag::new("lifecycle", "managed")];
        assert!(diff_rules(&policy(), &[f]).warnings.is_empty());
    }
}
