//! The storage policy: which prefixes move or expire when, which tags are exceptions, and the
//! tag the suite manages so that S3 lifecycle filters (which cannot say NOT) can express
//! "unless". Validation against S3's constraints, and rendering to lifecycle rules. Pure: no
//! AWS types.

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;

/// An S3 object tag (also a lifecycle filter tag).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl Tag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// A transition as written in the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionDoc {
    pub days: i64,
    pub storage_class: String,
}

/// One rule of the policy, as written (environment `LIFECYCLE_POLICY` or payload `policy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    /// Short name; the S3 rule ID is `id_prefix + name`.
    pub name: String,
    pub prefix: String,
    /// Any of these tags on an object exempts it from the rule (values compared
    /// case-insensitively: `legal_hold=TRUE` is honoured too).
    #[serde(default)]
    pub exceptions: Vec<Tag>,
    #[serde(default)]
    pub transitions: Vec<TransitionDoc>,
    #[serde(default)]
    pub expiration_days: Option<i64>,
    #[serde(default)]
    pub noncurrent_expiration_days: Option<i64>,
}

/// The whole policy, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    /// Lifecycle rules whose ID starts with this belong to the suite; every other rule is
    /// kept as it is.
    #[serde(default = "default_id_prefix")]
    pub id_prefix: String,
    /// The positive tag the rules filter on; the suite sets it on objects without an exception.
    #[serde(default = "default_managed_tag")]
    pub managed_tag: Tag,
    pub rules: Vec<RuleDoc>,
}

pub const DEFAULT_ID_PREFIX: &str = "playbook-lifecycle-";

fn default_id_prefix() -> String {
    DEFAULT_ID_PREFIX.to_string()
}

fn default_managed_tag() -> Tag {
    Tag::new("lifecycle", "managed")
}

impl PolicyDoc {
    /// The playbook: `attachments/` to Standard-IA after 30 days and Glacier after 365 unless
    /// `legal_hold=true`; `exports/` expire after 14 days unless `retention=long`.
    /// Noncurrent versions expire 30 (attachments) and 14 (exports) days after they stop
    /// being current.
    pub fn playbook() -> Self {
        PolicyDoc {
            id_prefix: default_id_prefix(),
            managed_tag: default_managed_tag(),
            rules: vec![
                RuleDoc {
                    name: "attachments".into(),
                    prefix: "attachments/".into(),
                    exceptions: vec![Tag::new("legal_hold", "true")],
                    transitions: vec![
                        TransitionDoc {
                            days: 30,
                            storage_class: "STANDARD_IA".into(),
                        },
                        TransitionDoc {
                            days: 365,
                            storage_class: "GLACIER".into(),
                        },
                    ],
                    expiration_days: None,
                    noncurrent_expiration_days: Some(30),
                },
                RuleDoc {
                    name: "exports".into(),
                    prefix: "exports/".into(),
                    // A legal hold protects every object, exports included; retention=long is
                    // the exports' own opt-out.
                    exceptions: vec![
                        Tag::new("legal_hold", "true"),
                        Tag::new("retention", "long"),
                    ],
                    transitions: vec![],
                    expiration_days: Some(14),
                    noncurrent_expiration_days: Some(14),
                },
            ],
        }
    }
}

/// S3 storage classes a transition can target, in waterfall order: a rule may only move
/// objects down this list.
pub const STORAGE_CLASSES: &[&str] = &[
    "STANDARD_IA",
    "INTELLIGENT_TIERING",
    "ONEZONE_IA",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
];

fn is_infrequent_access(class: &str) -> bool {
    matches!(class, "STANDARD_IA" | "ONEZONE_IA")
}

/// S3 allows at most 10 tags per object.
pub const MAX_OBJECT_TAGS: usize = 10;

/// A lifecycle rule in S3's terms, without AWS types: what the suite renders and what it reads
/// back from a bucket (for comparison).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    pub id: String,
    pub enabled: bool,
    pub prefix: String,
    /// Filter tags, sorted.
    pub tags: Vec<Tag>,
    /// Sorted by days.
    pub transitions: Vec<Transition>,
    pub expiration_days: Option<i32>,
    pub noncurrent_expiration_days: Option<i32>,
    /// Settings outside the suite's model seen on a rule read from a bucket (e.g.
    /// `AbortIncompleteMultipartUpload`, a transition on a date). Empty when rendered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Transition {
    pub days: i32,
    pub storage_class: String,
}

/// A validated policy. (Deserializing one, e.g. from a checkpoint, validates it again.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PolicyDoc", into = "PolicyDoc")]
pub struct Policy {
    doc: PolicyDoc,
}

impl TryFrom<PolicyDoc> for Policy {
    type Error = PolicyError;
    fn try_from(doc: PolicyDoc) -> Result<Self, PolicyError> {
        Policy::validate(doc)
    }
}

impl From<Policy> for PolicyDoc {
    fn from(p: Policy) -> Self {
        p.doc
    }
}

fn valid_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn check_tag(field: &str, t: &Tag) -> Result<(), PolicyError> {
    if t.key.trim().is_empty() || t.key.chars().count() > 128 {
        return Err(PolicyError::new(
            format!("{field}.key"),
            format!("{:?} is not a usable tag key", t.key),
            "use 1-128 characters",
        ));
    }
    if t.key.to_ascii_lowercase().starts_with("aws:") {
        return Err(PolicyError::new(
            format!("{field}.key"),
            format!("{:?} uses the reserved aws: prefix", t.key),
            "choose a key without the aws: prefix",
        ));
    }
    if t.value.chars().count() > 256 {
        return Err(PolicyError::new(
            format!("{field}.value"),
            "is longer than 256 characters",
            "shorten the tag value",
        ));
    }
    Ok(())
}

fn days_i32(field: &str, days: i64, min: i64) -> Result<i32, PolicyError> {
    if days < min || days > 36_500 {
        return Err(PolicyError::new(
            field,
            format!("{days} is out of range"),
            format!("give a whole number of days between {min} and 36500"),
        ));
    }
    Ok(days as i32)
}

impl Policy {
    /// Checks the policy against S3's lifecycle constraints and the suite's own. Errors name
    /// the field (relative to the policy document, e.g. `rules[0].transitions[1].days`).
    pub fn validate(doc: PolicyDoc) -> Result<Policy, PolicyError> {
        if doc.id_prefix.is_empty() || doc.id_prefix.len() > 128 {
            return Err(PolicyError::new(
                "id_prefix",
                "must be 1-128 characters: an empty prefix would make every rule of the bucket the suite's (and delete the others on apply)",
                format!("use e.g. {DEFAULT_ID_PREFIX:?}"),
            ));
        }
        check_tag("managed_tag", &doc.managed_tag)?;
        if doc.managed_tag.value.is_empty() {
            return Err(PolicyError::new(
                "managed_tag.value",
                "is empty",
                "use a value such as \"managed\"",
            ));
        }
        if doc.rules.is_empty() {
            return Err(PolicyError::new(
                "rules",
                "is an empty list",
                "give at least one rule",
            ));
        }
        for (i, r) in doc.rules.iter().enumerate() {
            let f = |s: &str| format!("rules[{i}].{s}");
            if !valid_name(&r.name) {
                return Err(PolicyError::new(
                    f("name"),
                    format!("{:?} is not a usable rule name", r.name),
                    "use 1-64 letters, digits, '-', '_' or '.'",
                ));
            }
            if doc.rules[..i].iter().any(|o| o.name == r.name) {
                return Err(PolicyError::new(
                    f("name"),
                    format!("{:?} is used by an earlier rule", r.name),
                    "give every rule its own name (it becomes the S3 rule ID)",
                ));
            }
            if r.prefix.is_empty() {
                return Err(PolicyError::new(
                    f("prefix"),
                    "is empty: the rule would cover the whole bucket, reports and state included",
                    "name a prefix such as \"attachments/\"",
                ));
            }
            if r.prefix.starts_with('/') || r.prefix.len() > 1024 {
                return Err(PolicyError::new(
                    f("prefix"),
                    format!("{:?} is not a key prefix", r.prefix),
                    "S3 keys have no leading slash: write e.g. \"exports/\"",
                ));
            }
            for (j, o) in doc.rules.iter().enumerate() {
                if i != j && r.prefix.starts_with(o.prefix.as_str()) && !o.prefix.is_empty() {
                    return Err(PolicyError::new(
                        f("prefix"),
                        format!(
                            "{:?} lies inside rule {:?}'s prefix {:?}: an object would fall under two rules",
                            r.prefix, o.name, o.prefix
                        ),
                        "use prefixes that do not overlap",
                    ));
                }
            }
            for (k, e) in r.exceptions.iter().enumerate() {
                let ef = f(&format!("exceptions[{k}]"));
                check_tag(&ef, e)?;
                if e.key == doc.managed_tag.key {
                    return Err(PolicyError::new(
                        format!("{ef}.key"),
                        format!("{:?} is the managed tag's key", e.key),
                        "use a different key for the exception",
                    ));
                }
            }
            let mut prev: Option<(i64, &str)> = None;
            for (k, t) in r.transitions.iter().enumerate() {
                let tf = |s: &str| f(&format!("transitions[{k}].{s}"));
                let Some(rank) = STORAGE_CLASSES.iter().position(|c| *c == t.storage_class) else {
                    return Err(PolicyError::new(
                        tf("storage_class"),
                        format!("{:?} is not a transition storage class", t.storage_class),
                        format!("use one of {}", STORAGE_CLASSES.join(", ")),
                    ));
                };
                days_i32(&tf("days"), t.days, 0)?;
                if is_infrequent_access(&t.storage_class) && t.days < 30 {
                    return Err(PolicyError::new(
                        tf("days"),
                        format!(
                            "{} days: S3 requires objects to stay at least 30 days in STANDARD before a transition to {}",
                            t.days, t.storage_class
                        ),
                        "use 30 days or more",
                    ));
                }
                if let Some((pdays, pclass)) = prev {
                    let prank = STORAGE_CLASSES
                        .iter()
                        .position(|c| *c == pclass)
                        .unwrap_or(0);
                    if rank <= prank {
                        return Err(PolicyError::new(
                            tf("storage_class"),
                            format!(
                                "{} after {pclass}: transitions only go down the waterfall ({})",
                                t.storage_class,
                                STORAGE_CLASSES.join(" → ")
                            ),
                            "order the transitions from warmer to colder classes",
                        ));
                    }
                    if t.days <= pdays {
                        return Err(PolicyError::new(
                            tf("days"),
                            format!(
                                "{} days is not after the previous transition ({pdays} days)",
                                t.days
                            ),
                            "give each transition more days than the one before",
                        ));
                    }
                    if is_infrequent_access(pclass) && t.days - pdays < 30 {
                        return Err(PolicyError::new(
                            tf("days"),
                            format!(
                                "{} days is only {} days after the transition to {pclass}: S3 requires at least 30 days in {pclass} first",
                                t.days,
                                t.days - pdays
                            ),
                            format!("use {} days or more", pdays + 30),
                        ));
                    }
                }
                prev = Some((t.days, &t.storage_class));
            }
            if let Some(d) = r.expiration_days {
                days_i32(&f("expiration_days"), d, 1)?;
                if let Some((pdays, _)) = prev {
                    if d <= pdays {
                        return Err(PolicyError::new(
                            f("expiration_days"),
                            format!("{d} days is not after the last transition ({pdays} days)"),
                            "expire after the last transition, or drop the transition",
                        ));
                    }
                }
            }
            if let Some(d) = r.noncurrent_expiration_days {
                days_i32(&f("noncurrent_expiration_days"), d, 1)?;
            }
            if r.transitions.is_empty() && r.expiration_days.is_none() {
                return Err(PolicyError::new(
                    f("transitions"),
                    "the rule neither transitions nor expires objects",
                    "give transitions or expiration_days",
                ));
            }
        }
        Ok(Policy { doc })
    }

    pub fn doc(&self) -> &PolicyDoc {
        &self.doc
    }

    pub fn managed_tag(&self) -> &Tag {
        &self.doc.managed_tag
    }

    pub fn id_prefix(&self) -> &str {
        &self.doc.id_prefix
    }

    pub fn rules(&self) -> &[RuleDoc] {
        &self.doc.rules
    }

    /// The rule whose prefix the key falls under (prefixes do not overlap).
    pub fn rule_for(&self, key: &str) -> Option<&RuleDoc> {
        self.doc
            .rules
            .iter()
            .find(|r| key.starts_with(r.prefix.as_str()))
    }

    pub fn rule_id(&self, rule: &RuleDoc) -> String {
        format!("{}{}", self.doc.id_prefix, rule.name)
    }

    /// Whether S3 rule `id` belongs to the suite.
    pub fn owns(&self, id: &str) -> bool {
        id.starts_with(self.doc.id_prefix.as_str())
    }

    /// The lifecycle rules the buckets should have: each filters on its prefix AND the
    /// managed tag.
    pub fn render(&self) -> Vec<RuleSpec> {
        self.doc
            .rules
            .iter()
            .map(|r| {
                let mut transitions: Vec<Transition> = r
                    .transitions
                    .iter()
                    .map(|t| Transition {
                        days: t.days as i32,
                        storage_class: t.storage_class.clone(),
                    })
                    .collect();
                transitions.sort();
                RuleSpec {
                    id: self.rule_id(r),
                    enabled: true,
                    prefix: r.prefix.clone(),
                    tags: vec![self.doc.managed_tag.clone()],
                    transitions,
                    expiration_days: r.expiration_days.map(|d| d as i32),
                    noncurrent_expiration_days: r.noncurrent_expiration_days.map(|d| d as i32),
                    other: vec![],
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(f: impl FnOnce(&mut PolicyDoc)) -> PolicyError {
        let mut d = PolicyDoc::playbook();
        f(&mut d);
        Policy::validate(d).unwrap_err()
    }

    #[test]
    fn playbook_is_valid_and_renders_tag_filtered_rules() {
        let p = Policy::validate(PolicyDoc::playbook()).unwrap();
        let rules = p.render();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].id, "playbook-lifecycle-attachments");
        assert_eq!(rules[0].prefix, "attachments/");
        assert_eq!(rules[0].tags, vec![Tag::new("lifecycle", "managed")]);
        assert_eq!(
            rules[0].transitions,
            vec![
                Transition {
                    days: 30,
                    storage_class: "STANDARD_IA".into()
                },
                Transition {
                    days: 365,
                    storage_class: "GLACIER".into()
                }
            ]
        );
        assert_eq!(rules[0].expiration_days, None);
        assert_eq!(rules[0].noncurrent_expiration_days, Some(30));
        assert_eq!(rules[1].expiration_days, Some(14));
        assert!(p.owns("playbook-lifecycle-exports"));
        assert!(!p.owns("team-cleanup"));
        assert_eq!(
            p.rule_for("attachments/a.pdf").map(|r| r.name.as_str()),
            Some("attachments")
        );
        assert!(p.rule_for("other/a").is_none());
    }

    #[test]
    fn s3_constraints_are_enforced_with_the_field_named() {
        let e = err(|d| d.rules[0].transitions[0].days = 29);
        assert_eq!(e.field, "rules[0].transitions[0].days");
        assert!(e.problem.contains("30 days"), "{e}");
        let e = err(|d| d.rules[0].transitions[1].days = 45);
        assert_eq!(e.field, "rules[0].transitions[1].days");
        assert!(e.problem.contains("only 15 days"), "{e}");
        assert!(e.fix.contains("60"), "{e}");
        let e = err(|d| d.rules[0].transitions[1].storage_class = "GLACEIR".into());
        assert_eq!(e.field, "rules[0].transitions[1].storage_class");
        let e = err(|d| d.rules[0].transitions.reverse());
        assert_eq!(e.field, "rules[0].transitions[1].storage_class");
        let e = err(|d| d.rules[1].expiration_days = Some(0));
        assert_eq!(e.field, "rules[1].expiration_days");
        let e = err(|d| d.rules[0].expiration_days = Some(300));
        assert_eq!(e.field, "rules[0].expiration_days");
        let e = err(|d| d.rules[1].noncurrent_expiration_days = Some(-1));
        assert_eq!(e.field, "rules[1].noncurrent_expiration_days");
        let e = err(|d| d.rules[1].prefix = "attachments/old/".into());
        assert_eq!(e.field, "rules[1].prefix");
        let e = err(|d| d.rules[1].prefix = String::new());
        assert_eq!(e.field, "rules[1].prefix");
        let e = err(|d| d.rules[1].name = "attachments".into());
        assert_eq!(e.field, "rules[1].name");
        let e = err(|d| d.id_prefix = String::new());
        assert_eq!(e.field, "id_prefix");
        let e = err(|d| d.rules[0].exceptions[0].key = "lifecycle".into());
        assert_eq!(e.field, "rules[0].exceptions[0].key");
        let e = err(|d| {
            d.rules[1].expiration_days = None;
        });
        assert_eq!(e.field, "rules[1].transitions");
        let e = err(|d| d.rules.clear());
        assert_eq!(e.field, "rules");
        let e = err(|d| d.managed_tag.key = "aws:x".into());
        assert_eq!(e.field, "managed_tag.key");
    }

    #[test]
    fn ia_then_glacier_thirty_days_apart_is_accepted() {
        let mut d = PolicyDoc::playbook();
        d.rules[0].transitions[1].days = 60;
        assert!(Policy::validate(d).is_ok());
    }
}
