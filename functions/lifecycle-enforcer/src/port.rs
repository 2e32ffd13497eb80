//! The narrow port for the S3 calls lifecycle-enforcer needs beyond `shared::store`
//! (listing, state and reports go through [`shared::store::ObjectStore`]), and its S3 adapter.

use std::future::Future;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types as s3t;
use shared::error::aws_error;
use shared::{SuiteError, SuiteResult};

use crate::policy::{RuleSpec, Tag, Transition};

/// An object's current tags and the version they were read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectTags {
    /// The version GetObjectTagging answered for (the current one); `None` when unversioned.
    pub version_id: Option<String>,
    pub tags: Vec<Tag>,
}

/// A bucket's lifecycle configuration: the rules as the suite understands them, and an opaque
/// copy the adapter needs to write foreign rules back exactly as they were.
#[derive(Debug, Clone)]
pub struct LifecycleSnapshot<R> {
    pub rules: Vec<RuleSpec>,
    pub raw: R,
}

pub trait LifecyclePort: Send + Sync {
    /// The adapter's own copy of a configuration (foreign rules are written back from it).
    type Raw: Send + Sync;

    /// The current version's tags; `Ok(None)` when the object is gone (deleted, or a delete
    /// marker is current).
    fn get_tags(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = SuiteResult<Option<ObjectTags>>> + Send;

    /// Replaces the tag set of `version_id` (the version the tags were read from, so that a
    /// newer version written in between is never given a set planned for another).
    /// `Ok(false)` when that object or version is gone.
    fn put_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: &[Tag],
    ) -> impl Future<Output = SuiteResult<bool>> + Send;

    /// An empty snapshot when the bucket has no lifecycle configuration.
    fn get_lifecycle(
        &self,
        bucket: &str,
    ) -> impl Future<Output = SuiteResult<LifecycleSnapshot<Self::Raw>>> + Send;

    /// Writes the bucket's whole configuration: the rules of `current` whose IDs are in
    /// `keep`, unchanged and in their order, followed by `desired`.
    fn put_lifecycle(
        &self,
        bucket: &str,
        current: &Self::Raw,
        keep: &[String],
        desired: &[RuleSpec],
    ) -> impl Future<Output = SuiteResult<()>> + Send;
}

/// The S3 adapter.
#[derive(Clone, Debug)]
pub struct S3Lifecycle {
    client: aws_sdk_s3::Client,
}

impl S3Lifecycle {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3Lifecycle { client }
    }
}

/// What the adapter keeps of a configuration.
#[derive(Debug, Clone, Default)]
pub struct RawLifecycle {
    pub rules: Vec<s3t::LifecycleRule>,
    pub transition_default_minimum_object_size: Option<s3t::TransitionDefaultMinimumObjectSize>,
}

fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// The object (or the version) is gone: deleted, or a delete marker is current (405).
fn gone<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    let status = e.raw_response().map(|r| r.status().as_u16());
    matches!(
        code(e),
        Some("NoSuchKey") | Some("NoSuchVersion") | Some("NotFound") | Some("MethodNotAllowed")
    ) || matches!(status, Some(404) | Some(405))
}

fn bucket_missing<E: ProvideErrorMetadata, R>(
    e: &SdkError<E, R>,
    bucket: &str,
) -> Option<SuiteError> {
    (code(e) == Some("NoSuchBucket")).then(|| SuiteError::Bucket {
        bucket: bucket.to_string(),
        problem: "does not exist (NoSuchBucket); check the bucket name and region".into(),
    })
}

fn internal(e: impl std::fmt::Display) -> SuiteError {
    SuiteError::Internal(format!("building an S3 request: {e}"))
}

/// An S3 rule as the suite understands it; anything outside the model lands in `other`.
pub fn spec_from_s3(r: &s3t::LifecycleRule) -> RuleSpec {
    let mut other = Vec::new();
    let mut prefix = String::new();
    let mut tags: Vec<Tag> = Vec::new();
    // The deprecated top-level Prefix still appears on old configurations.
    #[allow(deprecated)]
    let top_level_prefix = r.prefix();
    if let Some(p) = top_level_prefix {
        prefix = p.to_string();
        other.push("top-level Prefix (deprecated form)".to_string());
    }
    if let Some(f) = r.filter() {
        if let Some(and) = f.and() {
            prefix = and.prefix().unwrap_or_default().to_string();
            tags.extend(and.tags().iter().map(|t| Tag::new(t.key(), t.value())));
            if and.object_size_greater_than().is_some() || and.object_size_less_than().is_some() {
                other.push("object size filter".into());
            }
        } else {
            if let Some(p) = f.prefix() {
                prefix = p.to_string();
            }
            if let Some(t) = f.tag() {
                tags.push(Tag::new(t.key(), t.value()));
            }
        }
        if f.object_size_greater_than().is_some() || f.object_size_less_than().is_some() {
            other.push("object size filter".into());
        }
    }
    tags.sort();
    let mut transitions = Vec::new();
    for t in r.transitions() {
        match (t.days(), t.storage_class()) {
            (Some(d), Some(c)) if t.date().is_none() => transitions.push(Transition {
                days: d,
                storage_class: c.as_str().to_string(),
            }),
            _ => other.push("transition on a date".into()),
        }
    }
    transitions.sort();
    let mut expiration_days = None;
    if let Some(e) = r.expiration() {
        expiration_days = e.days();
        if e.date().is_some() {
            other.push("expiration on a date".into());
        }
        if e.expired_object_delete_marker().is_some() {
            other.push("ExpiredObjectDeleteMarker".into());
        }
    }
    let mut noncurrent_expiration_days = None;
    if let Some(n) = r.noncurrent_version_expiration() {
        noncurrent_expiration_days = n.noncurrent_days();
        if n.newer_noncurrent_versions().is_some() {
            other.push("NewerNoncurrentVersions".into());
        }
    }
    if !r.noncurrent_version_transitions().is_empty() {
        other.push("NoncurrentVersionTransitions".into());
    }
    if let Some(a) = r.abort_incomplete_multipart_upload() {
        other.push(format!(
            "AbortIncompleteMultipartUpload after {} days",
            a.days_after_initiation().unwrap_or_default()
        ));
    }
    RuleSpec {
        id: r.id().unwrap_or_default().to_string(),
        enabled: r.status() == &s3t::ExpirationStatus::Enabled,
        prefix,
        tags,
        transitions,
        expiration_days,
        noncurrent_expiration_days,
        other,
    }
}

/// A rendered rule in S3's terms: prefix AND tags.
pub fn spec_to_s3(spec: &RuleSpec) -> SuiteResult<s3t::LifecycleRule> {
    let tags = spec
        .tags
        .iter()
        .map(|t| s3t::Tag::builder().key(&t.key).value(&t.value).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(internal)?;
    let filter = match tags.len() {
        0 => s3t::LifecycleRuleFilter::builder()
            .prefix(&spec.prefix)
            .build(),
        _ => s3t::LifecycleRuleFilter::builder()
            .and(
                s3t::LifecycleRuleAndOperator::builder()
                    .prefix(&spec.prefix)
                    .set_tags(Some(tags))
                    .build(),
            )
            .build(),
    };
    let transitions: Vec<s3t::Transition> = spec
        .transitions
        .iter()
        .map(|t| {
            s3t::Transition::builder()
                .days(t.days)
                .storage_class(s3t::TransitionStorageClass::from(t.storage_class.as_str()))
                .build()
        })
        .collect();
    s3t::LifecycleRule::builder()
        .id(&spec.id)
        .status(if spec.enabled {
            s3t::ExpirationStatus::Enabled
        } else {
            s3t::ExpirationStatus::Disabled
        })
        .filter(filter)
        .set_transitions((!transitions.is_empty()).then_some(transitions))
        .set_expiration(
            spec.expiration_days
                .map(|d| s3t::LifecycleExpiration::builder().days(d).build()),
        )
        .set_noncurrent_version_expiration(spec.noncurrent_expiration_days.map(|d| {
            s3t::NoncurrentVersionExpiration::builder()
                .noncurrent_days(d)
                .build()
        }))
        .build()
        .map_err(internal)
}

impl LifecyclePort for S3Lifecycle {
    type Raw = RawLifecycle;

    async fn get_tags(&self, bucket: &str, key: &str) -> SuiteResult<Option<ObjectTags>> {
        match self
            .client
            .get_object_tagging()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectTags {
                version_id: out
                    .version_id()
                    .filter(|v| !v.is_empty() && *v != "null")
                    .map(str::to_string),
                tags: out
                    .tag_set()
                    .iter()
                    .map(|t| Tag::new(t.key(), t.value()))
                    .collect(),
            })),
            Err(e) => {
                if let Some(b) = bucket_missing(&e, bucket) {
                    return Err(b);
                }
                if gone(&e) {
                    return Ok(None);
                }
                Err(aws_error("s3", "GetObjectTagging", e))
            }
        }
    }

    async fn put_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: &[Tag],
    ) -> SuiteResult<bool> {
        let set = tags
            .iter()
            .map(|t| s3t::Tag::builder().key(&t.key).value(&t.value).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(internal)?;
        let tagging = s3t::Tagging::builder()
            .set_tag_set(Some(set))
            .build()
            .map_err(internal)?;
        match self
            .client
            .put_object_tagging()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_string))
            .tagging(tagging)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                if let Some(b) = bucket_missing(&e, bucket) {
                    return Err(b);
                }
                if gone(&e) {
                    return Ok(false);
                }
                Err(aws_error("s3", "PutObjectTagging", e))
            }
        }
    }

    async fn get_lifecycle(&self, bucket: &str) -> SuiteResult<LifecycleSnapshot<RawLifecycle>> {
        match self
            .client
            .get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => {
                let raw = RawLifecycle {
                    rules: out.rules().to_vec(),
                    transition_default_minimum_object_size: out
                        .transition_default_minimum_object_size()
                        .cloned(),
                };
                Ok(LifecycleSnapshot {
                    rules: raw.rules.iter().map(spec_from_s3).collect(),
                    raw,
                })
            }
            Err(e) if code(&e) == Some("NoSuchLifecycleConfiguration") => Ok(LifecycleSnapshot {
                rules: vec![],
                raw: RawLifecycle::default(),
            }),
            Err(e) => Err(bucket_missing(&e, bucket)
                .unwrap_or_else(|| aws_error("s3", "GetBucketLifecycleConfiguration", e))),
        }
    }

    async fn put_lifecycle(
        &self,
        bucket: &str,
        current: &RawLifecycle,
        keep: &[String],
        desired: &[RuleSpec],
    ) -> SuiteResult<()> {
        let mut rules: Vec<s3t::LifecycleRule> = current
            .rules
            .iter()
            .filter(|r| r.id().is_some_and(|id| keep.iter().any(|k| k == id)))
            .cloned()
            .collect();
        for d in desired {
            rules.push(spec_to_s3(d)?);
        }
        let config = s3t::BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .map_err(internal)?;
        self.client
            .put_bucket_lifecycle_configuration()
            .bucket(bucket)
            .lifecycle_configuration(config)
            .set_transition_default_minimum_object_size(
                current.transition_default_minimum_object_size.clone(),
            )
            .send()
            .await
            .map_err(|e| {
                bucket_missing(&e, bucket)
                    .unwrap_or_else(|| aws_error("s3", "PutBucketLifecycleConfiguration", e))
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Policy, PolicyDoc};

    #[test]
    fn rendered_rules_round_trip_through_s3_types() {
        let p = Policy::validate(PolicyDoc::playbook()).unwrap();
        for spec in p.render() {
            let s3 = spec_to_s3(&spec).unwrap();
            assert_eq!(spec_from_s3(&s3), spec);
        }
    }

    #[test]
    fn settings_outside_the_model_are_visible() {
        let r = s3t::LifecycleRule::builder()
            .id("x")
            .status(s3t::ExpirationStatus::Enabled)
            .filter(s3t::LifecycleRuleFilter::builder().prefix("a/").build())
            .abort_incomplete_multipart_upload(
                s3t::AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(7)
                    .build(),
            )
            .build()
            .unwrap();
        let s = spec_from_s3(&r);
        assert_eq!(s.prefix, "a/");
        assert_eq!(s.other, vec!["AbortIncompleteMultipartUpload after 7 days"]);
    }
}
