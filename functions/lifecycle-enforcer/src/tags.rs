//! Tag-merge planning: given an object's key and its current tags, what its tag set should be
//! under the policy. PutObjectTagging replaces the whole set, so a plan always carries every
//! existing tag forward: the suite only ever adds or removes its own managed tag. Pure.

use serde::{Deserialize, Serialize};

use crate::policy::{Policy, RuleDoc, Tag, MAX_OBJECT_TAGS};

/// What the object's tags need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The key is under no rule's prefix: not the suite's business.
    NotManaged,
    /// Carries the managed tag, no exception.
    Compliant,
    /// Carries an exception tag and no managed tag: the exception is honoured.
    Exception,
    /// Needs the managed tag added.
    AddManaged,
    /// Has an exception tag and the managed tag: the managed tag must go.
    RemoveManaged,
    /// Needs the managed tag, but it already has 10 tags: nothing is dropped, it is skipped.
    TagLimit,
    /// The managed tag's key is there with another value: someone else's tag, not overwritten.
    Conflict,
}

impl Verdict {
    /// Whether the object disagrees with the policy.
    pub fn out_of_policy(self) -> bool {
        matches!(
            self,
            Verdict::AddManaged | Verdict::RemoveManaged | Verdict::TagLimit | Verdict::Conflict
        )
    }

    /// Whether an exception tag decided the outcome.
    pub fn exception_honoured(self) -> bool {
        matches!(self, Verdict::Exception | Verdict::RemoveManaged)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPlan {
    pub verdict: Verdict,
    /// The rule the key falls under.
    pub rule: Option<String>,
    /// The complete tag set to write, when a write is needed.
    pub new_tags: Option<Vec<Tag>>,
    /// Why, in words (for reports and logs).
    pub reason: String,
}

/// Exception tags match on the exact key and on the value ignoring case and surrounding
/// blanks: a legal hold written `legal_hold=TRUE` must be honoured as well.
pub fn exception_present<'a>(rule: &'a RuleDoc, tags: &[Tag]) -> Option<&'a Tag> {
    rule.exceptions.iter().find(|e| {
        tags.iter()
            .any(|t| t.key == e.key && t.value.trim().eq_ignore_ascii_case(e.value.trim()))
    })
}

pub fn plan(policy: &Policy, key: &str, current: &[Tag]) -> TagPlan {
    let Some(rule) = policy.rule_for(key) else {
        return TagPlan {
            verdict: Verdict::NotManaged,
            rule: None,
            new_tags: None,
            reason: "the key is under no rule's prefix".into(),
        };
    };
    let managed = policy.managed_tag();
    let rule_name = Some(rule.name.clone());
    let same_key: Vec<&Tag> = current.iter().filter(|t| t.key == managed.key).collect();
    let has_managed = same_key.iter().any(|t| t.value == managed.value);
    if let Some(t) = same_key.iter().find(|t| t.value != managed.value) {
        return TagPlan {
            verdict: Verdict::Conflict,
            rule: rule_name,
            new_tags: None,
            reason: format!(
                "tag {:?} holds {:?}, not {:?}: it is not the suite's to overwrite; remove or rename it",
                t.key, t.value, managed.value
            ),
        };
    }
    match (exception_present(rule, current), has_managed) {
        (Some(e), true) => TagPlan {
            verdict: Verdict::RemoveManaged,
            rule: rule_name,
            new_tags: Some(current.iter().filter(|t| *t != managed).cloned().collect()),
            reason: format!("exception {e} present: the managed tag {managed} is removed"),
        },
        (Some(e), false) => TagPlan {
            verdict: Verdict::Exception,
            rule: rule_name,
            new_tags: None,
            reason: format!("exception {e} present and honoured"),
        },
        (None, true) => TagPlan {
            verdict: Verdict::Compliant,
            rule: rule_name,
            new_tags: None,
            reason: format!("carries {managed}"),
        },
        (None, false) if current.len() >= MAX_OBJECT_TAGS => TagPlan {
            verdict: Verdict::TagLimit,
            rule: rule_name,
            new_tags: None,
            reason: format!(
                "the object already has {} tags (S3 allows {MAX_OBJECT_TAGS}); adding {managed} would mean dropping one of the owner's tags, so nothing was changed: remove a tag and the next sweep will add it",
                current.len()
            ),
        },
        (None, false) => {
            let mut tags = current.to_vec();
            tags.push(managed.clone());
            TagPlan {
                verdict: Verdict::AddManaged,
                rule: rule_name,
                new_tags: Some(tags),
                reason: format!("no exception: {managed} added to the existing tags"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyDoc;

    fn policy() -> Policy {
        Policy::validate(PolicyDoc::playbook()).unwrap()
    }

    fn t(k: &str, v: &str) -> Tag {
        Tag::new(k, v)
    }

    #[test]
    fn adds_the_managed_tag_keeping_every_user_tag() {
        let cur = vec![t("owner", "billing"), t("project", "x")];
        let p = plan(&policy(), "attachments/a.pdf", &cur);
        assert_eq!(p.verdict, Verdict::AddManaged);
        assert_eq!(
            p.new_tags.unwrap(),
            vec![
                t("owner", "billing"),
                t("project", "x"),
                t("lifecycle", "managed")
            ]
        );
        assert_eq!(p.rule.as_deref(), Some("attachments"));
    }

    #[test]
    fn exceptions_per_rule() {
        let p = plan(&policy(), "attachments/a", &[t("legal_hold", "true")]);
        assert_eq!(p.verdict, Verdict::Exception);
        assert!(p.new_tags.is_none());
        let p = plan(&policy(), "attachments/a", &[t("legal_hold", " TRUE ")]);
        assert_eq!(p.verdict, Verdict::Exception);
        let p = plan(&policy(), "attachments/a", &[t("legal_hold", "false")]);
        assert_eq!(p.verdict, Verdict::AddManaged);
        // The other rule's exception does not apply here.
        let p = plan(&policy(), "attachments/a", &[t("retention", "long")]);
        assert_eq!(p.verdict, Verdict::AddManaged);
        let p = plan(&policy(), "exports/a.csv", &[t("retention", "long")]);
        assert_eq!(p.verdict, Verdict::Exception);
        assert!(p.verdict.exception_honoured());
    }

    #[test]
    fn a_hold_added_later_removes_only_the_managed_tag() {
        let cur = vec![
            t("owner", "b"),
            t("lifecycle", "managed"),
            t("legal_hold", "true"),
        ];
        let p = plan(&policy(), "attachments/a", &cur);
        assert_eq!(p.verdict, Verdict::RemoveManaged);
        assert_eq!(
            p.new_tags.unwrap(),
            vec![t("owner", "b"), t("legal_hold", "true")]
        );
    }

    #[test]
    fn compliant_and_unmanaged_need_nothing() {
        let p = plan(&policy(), "attachments/a", &[t("lifecycle", "managed")]);
        assert_eq!(p.verdict, Verdict::Compliant);
        assert!(!p.verdict.out_of_policy());
        let p = plan(&policy(), "reports/x.json", &[]);
        assert_eq!(p.verdict, Verdict::NotManaged);
        assert!(p.new_tags.is_none());
    }

    #[test]
    fn ten_tags_are_never_trimmed() {
        let cur: Vec<Tag> = (0..10).map(|i| t(&format!("k{i}"), "v")).collect();
        let p = plan(&policy(), "exports/a", &cur);
        assert_eq!(p.verdict, Verdict::TagLimit);
        assert!(p.new_tags.is_none());
        assert!(p.reason.contains("10 tags"), "{}", p.reason);
        // Nine user tags: room for the managed one.
        let p = plan(&policy(), "exports/a", &cur[..9]);
        assert_eq!(p.new_tags.unwrap().len(), 10);
        // Ten tags with a hold and the managed tag: removal always fits.
        let mut cur: Vec<Tag> = (0..8).map(|i| t(&format!("k{i}"), "v")).collect();
        cur.push(t("lifecycle", "managed"));
        cur.push(t("retention", "long"));
        let p = plan(&policy(), "exports/a", &cur);
        assert_eq!(p.verdict, Verdict::RemoveManaged);
        assert_eq!(p.new_tags.unwrap().len(), 9);
    }

    #[test]
    fn a_foreign_value_under_the_managed_key_is_not_overwritten() {
        let p = plan(
            &policy(),
            "attachments/a",
            &[t("lifecycle", "keep-forever")],
        );
        assert_eq!(p.verdict, Verdict::Conflict);
        assert!(p.new_tags.is_none());
        assert!(p.verdict.out_of_policy());
    }
}
