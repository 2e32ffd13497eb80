//! lifecycle-enforcer against moto's real S3 API, called in-process through its Lambda handler:
//! tagging on create (user tags kept, URL-encoded keys), exception tags honoured, holds added
//! and lifted, duplicate and out-of-order events, sweeps (one-shot, checkpointed, dry run),
//! rule reconciliation on both buckets, and invalid policies.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::types as s3t;
use chrono::Utc;
use lambda_runtime::{Context, LambdaEvent};
use lifecycle_enforcer::handler::{handle, Continuation, Deps};
use lifecycle_enforcer::port::S3Lifecycle;
use lifecycle_enforcer::request::Defaults;
use serde_json::{json, Value};
use shared::config::{CommonConfig, Vars};
use shared::store::S3Store;
use suite_tests::{create_buckets, exclusive_moto, get, put, Moto};

const PRIMARY: &str = "lc-primary";
const DR: &str = "lc-dr";
const REPORTS: &str = "lc-reports";

type D = Deps<S3Store, S3Lifecycle>;

async fn deps(m: &Moto) -> D {
    let clients = m.clients().await;
    Deps {
        common: CommonConfig {
            function_name: "lifecycle-enforcer".into(),
            environment: "local".into(),
            deployment: "test".into(),
            report_bucket: REPORTS.into(),
            report_prefix: "reports/".into(),
            metrics_namespace: "Test".into(),
            log_mask_fields: vec![],
        },
        defaults: Defaults::from_vars(&Vars::from_pairs([
            ("PRIMARY_BUCKET", PRIMARY),
            ("REPLICA_BUCKET", DR),
        ]))
        .unwrap(),
        store: S3Store::new(clients.s3()),
        port: S3Lifecycle::new(clients.s3()),
        lambda: None,
        continuation: Continuation::Return,
        margin: Duration::ZERO,
    }
}

async fn invoke(d: &D, payload: Value) -> Result<Value, shared::SuiteError> {
    let mut ctx = Context::default();
    ctx.request_id = "test-request".into();
    ctx.deadline = (Utc::now().timestamp_millis() + 600_000) as u64;
    handle(d, LambdaEvent::new(payload, ctx)).await
}

fn record(event: &str, bucket: &str, encoded_key: &str, sequencer: &str) -> Value {
    json!({
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-27T10:00:00.000Z", "eventName": event,
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": encoded_key, "sequencer": sequencer}}
    })
}

fn s3_event(event: &str, bucket: &str, encoded_key: &str, sequencer: &str) -> Value {
    json!({"Records": [record(event, bucket, encoded_key, sequencer)]})
}

fn outcome(v: &Value) -> String {
    v["results"][0]["outcome"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn tags_of(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> BTreeMap<String, String> {
    s3.get_object_tagging()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("tags of {key}: {e:?}"))
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

async fn set_tags(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, tags: &[(&str, &str)]) {
    let set = tags
        .iter()
        .map(|(k, v)| s3t::Tag::builder().key(*k).value(*v).build().unwrap())
        .collect();
    s3.put_object_tagging()
        .bucket(bucket)
        .key(key)
        .tagging(
            s3t::Tagging::builder()
                .set_tag_set(Some(set))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("put tags {key}: {e:?}"));
}

async fn put_tagged(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, tags: &[(&str, &str)]) {
    put(s3, bucket, key, format!("body of {key}")).await;
    if !tags.is_empty() {
        set_tags(s3, bucket, key, tags).await;
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn tagging_on_create_merges_with_user_tags_and_never_drops_one() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    create_buckets(&s3, &[PRIMARY, DR, REPORTS]).await;
    let d = deps(m).await;

    // The key as stored, and as an S3 notification encodes it.
    let key = "attachments/2026/scan 7+8 é.pdf";
    put_tagged(&s3, PRIMARY, key, &[("owner", "billing"), ("project", "x")]).await;
    let r = invoke(
        &d,
        s3_event(
            "ObjectCreated:Put",
            PRIMARY,
            "attachments/2026/scan+7%2B8+%C3%A9.pdf",
            "0055AED6DCD90281E5",
        ),
    )
    .await
    .unwrap();
    assert_eq!(outcome(&r), "tagged", "{r}");
    assert_eq!(r["results"][0]["key"], key);
    assert_eq!(
        tags_of(&s3, PRIMARY, key).await,
        map(&[
            ("owner", "billing"),
            ("project", "x"),
            ("lifecycle", "managed")
        ])
    );

    // Ten tags already: nothing dropped, nothing added, a clear reason.
    let full: Vec<(String, String)> = (0..10)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    let full_ref: Vec<(&str, &str)> = full.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    put_tagged(&s3, PRIMARY, "exports/full.csv", &full_ref).await;
    let r = invoke(
        &d,
        s3_event("ObjectCreated:Put", PRIMARY, "exports/full.csv", "0A"),
    )
    .await
    .unwrap();
    assert_eq!(outcome(&r), "skipped", "{r}");
    assert!(
        r["results"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("10 tags"),
        "{r}"
    );
    assert_eq!(
        tags_of(&s3, PRIMARY, "exports/full.csv").await,
        map(&full_ref)
    );

    // Outside the policy's prefixes, or in a bucket that is not managed: ignored.
    put_tagged(&s3, PRIMARY, "tmp/x", &[]).await;
    let r = invoke(&d, s3_event("ObjectCreated:Put", PRIMARY, "tmp/x", "0A"))
        .await
        .unwrap();
    assert_eq!(outcome(&r), "ignored");
    assert!(tags_of(&s3, PRIMARY, "tmp/x").await.is_empty());
    let r = invoke(
        &d,
        s3_event("ObjectCreated:Put", REPORTS, "attachments/x", "0A"),
    )
    .await
    .unwrap();
    assert_eq!(outcome(&r), "ignored");

    // A deleted object is "gone", not an error.
    let r = invoke(
        &d,
        s3_event(
            "ObjectCreated:Put",
            PRIMARY,
            "attachments/never-existed",
            "0A",
        ),
    )
    .await
    .unwrap();
    assert_eq!(outcome(&r), "gone", "{r}");
}

#[tokio::test]
async fn legal_hold_is_honoured_on_create_and_when_added_or_lifted_later() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    create_buckets(&s3, &[PRIMARY, DR, REPORTS]).await;
    let d = deps(m).await;

    // Created under a hold: never gets the managed tag.
    let held = "attachments/held.pdf";
    put_tagged(
        &s3,
        PRIMARY,
        held,
        &[("legal_hold", "true"), ("case", "42")],
    )
    .await;
    let r = invoke(&d, s3_event("ObjectCreated:Put", PRIMARY, held, "01"))
        .await
        .unwrap();
    assert_eq!(outcome(&r), "exception_honoured", "{r}");
    assert_eq!(
        tags_of(&s3, PRIMARY, held).await,
        map(&[("legal_hold", "true"), ("case", "42")])
    );
    // The exports exception works the same way.
    put_tagged(&s3, PRIMARY, "exports/keep.csv", &[("retention", "long")]).await;
    let r = invoke(
        &d,
        s3_event("ObjectCreated:Put", PRIMARY, "exports/keep.csv", "01"),
    )
    .await
    .unwrap();
    assert_eq!(outcome(&r), "exception_honoured", "{r}");
    assert!(!tags_of(&s3, PRIMARY, "exports/keep.csv")
        .await
        .contains_key("lifecycle"));

    // Created without a hold: tagged. A hold added later removes the managed tag only.
    let doc = "attachments/contract.pdf";
    put_tagged(&s3, PRIMARY, doc, &[("owner", "legal")]).await;
    let r = invoke(&d, s3_event("ObjectCreated:Put", PRIMARY, doc, "10"))
        .await
        .unwrap();
    assert_eq!(outcome(&r), "tagged");
    set_tags(
        &s3,
        PRIMARY,
        doc,
        &[
            ("owner", "legal"),
            ("lifecycle", "managed"),
            ("legal_hold", "true"),
        ],
    )
    .await;
    let r = invoke(&d, s3_event("ObjectTagging:Put", PRIMARY, doc, "11"))
        .await
        .unwrap();
    assert_eq!(outcome(&r), "untagged", "{r}");
    assert_eq!(
        tags_of(&s3, PRIMARY, doc).await,
        map(&[("owner", "legal"), ("legal_hold", "true")])
    );

    // The hold lifted: the managed tag comes back.
    set_tags(&s3, PRIMARY, doc, &[("owner", "legal")]).await;
    let r = invoke(&d, s3_event("ObjectTagging:Put", PRIMARY, doc, "12"))
        .await
        .unwrap();
    assert_eq!(outcome(&r), "tagged", "{r}");
    assert_eq!(
        tags_of(&s3, PRIMARY, doc).await,
        map(&[("owner", "legal"), ("lifecycle", "managed")])
    );

    // All tags deleted (ObjectTagging:Delete): restored too.
    s3.delete_object_tagging()
        .bucket(PRIMARY)
        .key(doc)
        .send()
        .await
        .unwrap();
    let r = invoke(&d, s3_event("ObjectTagging:Delete", PRIMARY, doc, "13"))
        .await
        .unwrap();
    assert_eq!(outcome(&r), "tagged", "{r}");
    assert_eq!(
        tags_of(&s3, PRIMARY, doc).await,
        map(&[("lifecycle", "managed")])
    );
}

#[tokio::test]
async fn duplicate_and_out_of_order_events_are_no_ops() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    create_buckets(&s3, &[PRIMARY, DR, REPORTS]).await;
    let d = deps(m).await;
    let key = "attachments/dup.pdf";
    put_tagged(&s3, PRIMARY, key, &[]).await;
    let r = invoke(&d, s3_event("ObjectCreated:Put", PRIMARY, key, "0A"))
        .await
        .unwrap();
    assert_eq!(outcome(&r), "tagged");

    // Behind the function's back (no event), the tag goes. A repeated delivery of the event
    // already applied, or an older one, must not act: if they did, the tag would come back.
    s3.delete_object_tagging()
        .bucket(PRIMARY)
        .key(key)
        .send()
        .await
        .unwrap();
    let r = invoke(&d, s3_event("ObjectCreated:Put", PRIMARY, key, "0A"))
        .await
        .unwrap();
    assert_eq!(outcome(&r), "duplicate", "{r}");
    // "9" is 0x09 once left-padded: older than 0x0A (a plain string comparison says newer).
    let r = invoke(&d, s3_event("ObjectTagging:Put", PRIMARY, key, "9"))
        .await
        .unwrap();
    assert_eq!(outcome(&r), "stale", "{r}");
    assert!(tags_of(&s3, PRIMARY, key).await.is_empty());

    // A newer event re-reads the object and applies.
    let r = invoke(&d, s3_event("ObjectTagging:Delete", PRIMARY, key, "0B"))
        .await
        .unwrap();
    assert_eq!(outcome(&r), "tagged", "{r}");
    assert_eq!(
        tags_of(&s3, PRIMARY, key).await,
        map(&[("lifecycle", "managed")])
    );

    // Two records in one delivery, newest first: the older one is stale.
    let two = json!({"Records": [
        record("ObjectTagging:Put", PRIMARY, key, "0D"),
        record("ObjectTagging:Put", PRIMARY, key, "0C"),
    ]});
    let r = invoke(&d, two).await.unwrap();
    assert_eq!(r["results"][0]["outcome"], "compliant", "{r}");
    assert_eq!(r["results"][1]["outcome"], "stale", "{r}");

    // A malformed sequencer is refused, naming the field.
    let e = invoke(&d, s3_event("ObjectCreated:Put", PRIMARY, key, "not-hex"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("Records[0].s3.object.sequencer"), "{e}");
}

#[tokio::test]
async fn versioned_bucket_tags_the_current_version() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    create_buckets(&s3, &[PRIMARY, DR, REPORTS]).await;
    s3.put_bucket_versioning()
        .bucket(PRIMARY)
        .versioning_configuration(
            s3t::VersioningConfiguration::builder()
                .status(s3t::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let d = deps(m).await;
    let key = "exports/v.csv";
    put(&s3, PRIMARY, key, "v1").await;
    put(&s3, PRIMARY, key, "v2").await;
    let r = invoke(&d, s3_event("ObjectCreated:Put", PRIMARY, key, "20"))
        .await
        .unwrap();
    assert_eq!(outcome(&r), "tagged", "{r}");
    let versions = s3
        .list_object_versions()
        .bucket(PRIMARY)
        .prefix(key)
        .send()
        .await
        .unwrap();
    let mut seen = 0;
    for v in versions.versions() {
        let t = s3
            .get_object_tagging()
            .bucket(PRIMARY)
            .key(key)
            .version_id(v.version_id().unwrap())
            .send()
            .await
            .unwrap();
        let tagged = t.tag_set().iter().any(|t| t.key() == "lifecycle");
        assert_eq!(tagged, v.is_latest() == Some(true), "version {v:?}");
        seen += 1;
    }
    assert_eq!(seen, 2);
    // A delete marker on top: the object is gone.
    s3.delete_object()
        .bucket(PRIMARY)
        .key(key)
        .send()
        .await
        .unwrap();
    let r = invoke(&d, s3_event("ObjectTagging:Put", PRIMARY, key, "21"))
        .await
        .unwrap();
    assert_eq!(outcome(&r), "gone", "{r}");
}

/// A bucket with every case the sweep meets.
async fn seed_sweep(s3: &aws_sdk_s3::Client, bucket: &str) {
    create_buckets(s3, &[bucket]).await;
    for i in 0..6 {
        put_tagged(
            s3,
            bucket,
            &format!("attachments/new-{i}.pdf"),
            &[("owner", "a")],
        )
        .await;
    }
    put_tagged(
        s3,
        bucket,
        "attachments/ok.pdf",
        &[("lifecycle", "managed")],
    )
    .await;
    put_tagged(
        s3,
        bucket,
        "attachments/held.pdf",
        &[("legal_hold", "true")],
    )
    .await;
    put_tagged(
        s3,
        bucket,
        "attachments/held-tagged.pdf",
        &[("lifecycle", "managed"), ("legal_hold", "TRUE"), ("x", "y")],
    )
    .await;
    put_tagged(
        s3,
        bucket,
        "attachments/conflict.pdf",
        &[("lifecycle", "forever")],
    )
    .await;
    for i in 0..3 {
        put_tagged(s3, bucket, &format!("exports/e-{i}.csv"), &[]).await;
    }
    put_tagged(s3, bucket, "exports/long.csv", &[("retention", "long")]).await;
    put_tagged(s3, bucket, "other/untouched.bin", &[]).await;
}

async fn all_tags(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let out = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    let mut m = BTreeMap::new();
    for o in out.contents() {
        let k = o.key().unwrap().to_string();
        m.insert(k.clone(), tags_of(s3, bucket, &k).await);
    }
    m
}

#[tokio::test]
async fn sweep_with_checkpoints_reaches_the_one_shot_end_state_and_dry_run_changes_nothing() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    create_buckets(&s3, &[PRIMARY, DR, REPORTS]).await;
    let d = deps(m).await;
    seed_sweep(&s3, "sweep-one").await;
    seed_sweep(&s3, "sweep-steps").await;
    seed_sweep(&s3, "sweep-dry").await;
    let before = all_tags(&s3, "sweep-dry").await;

    // Dry run: reports what it would change, changes nothing.
    let dry = invoke(
        &d,
        json!({"action": "sweep", "buckets": ["sweep-dry"], "dry_run": true, "run_id": "dry"}),
    )
    .await
    .unwrap();
    assert_eq!(dry["status"], "WOULD_CHANGE", "{dry}");
    assert_eq!(dry["totals"]["out_of_policy"], 11, "{dry}");
    assert_eq!(dry["totals"]["tagged"], 0);
    assert!(dry["changes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["applied"] == false));
    assert_eq!(all_tags(&s3, "sweep-dry").await, before);

    // One shot.
    let one = invoke(
        &d,
        json!({"action": "sweep", "buckets": ["sweep-one"], "run_id": "one-shot"}),
    )
    .await
    .unwrap();
    assert_eq!(one["status"], "PARTIAL", "{one}");
    let t = &one["totals"];
    assert_eq!(t["scanned"], 14, "{t}");
    assert_eq!(t["tagged"], 9, "{t}");
    assert_eq!(t["untagged"], 1, "{t}");
    assert_eq!(t["exceptions_honoured"], 3, "{t}");
    assert_eq!(t["skipped"], 1, "{t}");
    assert_eq!(t["compliant"], 3, "{t}");
    assert_eq!(t["out_of_policy"], dry["totals"]["out_of_policy"]);
    assert_eq!(one["invocations"], 1);
    let tags = all_tags(&s3, "sweep-one").await;
    assert_eq!(
        tags["attachments/new-0.pdf"],
        map(&[("owner", "a"), ("lifecycle", "managed")])
    );
    assert_eq!(
        tags["attachments/held-tagged.pdf"],
        map(&[("legal_hold", "TRUE"), ("x", "y")])
    );
    assert_eq!(
        tags["attachments/conflict.pdf"],
        map(&[("lifecycle", "forever")])
    );
    assert!(tags["other/untouched.bin"].is_empty());
    // The report is in S3, JSON and Markdown.
    let json_uri = one["report"]["json"].as_str().unwrap();
    let key = json_uri.strip_prefix(&format!("s3://{REPORTS}/")).unwrap();
    let stored: Value = serde_json::from_slice(&get(&s3, REPORTS, key).await.unwrap()).unwrap();
    assert_eq!(stored["totals"], one["totals"]);
    assert!(get(&s3, REPORTS, &key.replace(".json", ".md"))
        .await
        .is_some());

    // Checkpointed: one page of two keys per invocation, continued with `resume`.
    let mut r = invoke(
        &d,
        json!({"action": "sweep", "buckets": ["sweep-steps"], "run_id": "steps", "page_size": 2, "max_runtime_seconds": 0}),
    )
    .await
    .unwrap();
    let mut steps = 1;
    let mut stale_checked = false;
    while r["status"] == "IN_PROGRESS" {
        let resume = r["resume"].clone();
        assert!(resume.is_object(), "{r}");
        if !stale_checked && resume["sequence"].as_u64() == Some(2) {
            // A duplicate of the previous continuation is ignored.
            let stale = invoke(
                &d,
                json!({"resume": {"run_id": "steps", "sequence": 1}, "max_runtime_seconds": 0}),
            )
            .await
            .unwrap();
            assert_eq!(stale["status"], "IN_PROGRESS");
            assert!(stale["resume"].is_null(), "{stale}");
            assert!(stale["warnings"][0].as_str().unwrap().contains("ignored"));
            stale_checked = true;
        }
        r = invoke(&d, json!({"resume": resume, "max_runtime_seconds": 0}))
            .await
            .unwrap();
        steps += 1;
        assert!(steps < 50, "does not finish: {r}");
    }
    assert!(stale_checked);
    assert!(steps >= 6, "expected several invocations, got {steps}");
    assert_eq!(r["invocations"], steps);
    assert_eq!(r["totals"], one["totals"], "{r}");
    assert_eq!(
        all_tags(&s3, "sweep-one").await,
        all_tags(&s3, "sweep-steps").await
    );

    // A repeated delivery of a finished run replays its report.
    let again = invoke(
        &d,
        json!({"action": "sweep", "buckets": ["sweep-steps"], "run_id": "steps"}),
    )
    .await
    .unwrap();
    assert_eq!(again["replayed"], true, "{again}");
    assert_eq!(again["totals"], r["totals"]);

    // A second sweep finds only what it cannot fix.
    let second = invoke(
        &d,
        json!({"action": "sweep", "buckets": ["sweep-one"], "run_id": "second"}),
    )
    .await
    .unwrap();
    assert_eq!(second["totals"]["tagged"], 0, "{second}");
    assert_eq!(second["totals"]["out_of_policy"], 1, "{second}");
}

fn foreign_rule() -> s3t::LifecycleRule {
    s3t::LifecycleRule::builder()
        .id("team-tmp-cleanup")
        .status(s3t::ExpirationStatus::Enabled)
        .filter(s3t::LifecycleRuleFilter::builder().prefix("tmp/").build())
        .expiration(s3t::LifecycleExpiration::builder().days(3).build())
        .build()
        .unwrap()
}

async fn rules_of(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<s3t::LifecycleRule> {
    match s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(o) => o.rules().to_vec(),
        Err(_) => vec![],
    }
}

#[tokio::test]
async fn reconciliation_on_both_buckets_keeps_foreign_rules_and_is_idempotent() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    create_buckets(&s3, &[PRIMARY, DR, REPORTS]).await;
    let d = deps(m).await;
    // Primary: only a foreign rule. DR: the foreign rule and a stale suite rule.
    let stale = s3t::LifecycleRule::builder()
        .id("playbook-lifecycle-attachments")
        .status(s3t::ExpirationStatus::Enabled)
        .filter(
            s3t::LifecycleRuleFilter::builder()
                .and(
                    s3t::LifecycleRuleAndOperator::builder()
                        .prefix("attachments/")
                        .tags(
                            s3t::Tag::builder()
                                .key("lifecycle")
                                .value("managed")
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .build(),
        )
        .transitions(
            s3t::Transition::builder()
                .days(90)
                .storage_class(s3t::TransitionStorageClass::StandardIa)
                .build(),
        )
        .build()
        .unwrap();
    for (bucket, rules) in [
        (PRIMARY, vec![foreign_rule()]),
        (DR, vec![foreign_rule(), stale]),
    ] {
        s3.put_bucket_lifecycle_configuration()
            .bucket(bucket)
            .lifecycle_configuration(
                s3t::BucketLifecycleConfiguration::builder()
                    .set_rules(Some(rules))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("seed lifecycle {bucket}: {e:?}"));
    }

    // Report only: drift found, nothing written.
    let r = invoke(&d, json!({"action": "reconcile"})).await.unwrap();
    assert_eq!(r["status"], "DRIFT", "{r}");
    assert_eq!(r["buckets"][0]["bucket"], PRIMARY);
    assert_eq!(r["buckets"][0]["drift"].as_array().unwrap().len(), 2, "{r}");
    let dr = &r["buckets"][1];
    assert_eq!(dr["bucket"], DR);
    let kinds: Vec<&str> = dr["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["different", "missing"], "{dr}");
    assert!(dr["drift"][0]["details"][0]
        .as_str()
        .unwrap()
        .starts_with("transitions"));
    assert_eq!(r["drift_rules"], 4);
    assert_eq!(rules_of(&s3, PRIMARY).await.len(), 1);
    assert_eq!(rules_of(&s3, DR).await.len(), 2);

    // Apply: both buckets get the policy's rules; the foreign rule stays as it was.
    let r = invoke(&d, json!({"action": "reconcile", "apply": true}))
        .await
        .unwrap();
    assert_eq!(r["status"], "APPLIED", "{r}");
    for b in r["buckets"].as_array().unwrap() {
        assert_eq!(b["applied"], true, "{b}");
        assert_eq!(b["foreign_kept"], json!(["team-tmp-cleanup"]));
        assert!(b["warnings"].as_array().unwrap().is_empty(), "{b}");
    }
    for bucket in [PRIMARY, DR] {
        let rules = rules_of(&s3, bucket).await;
        let ids: Vec<&str> = rules.iter().filter_map(|r| r.id()).collect();
        assert_eq!(
            ids,
            vec![
                "team-tmp-cleanup",
                "playbook-lifecycle-attachments",
                "playbook-lifecycle-exports"
            ],
            "{bucket}"
        );
        let f = &rules[0];
        assert_eq!(f.filter().and_then(|f| f.prefix()), Some("tmp/"));
        assert_eq!(f.expiration().and_then(|e| e.days()), Some(3));
        let a = &rules[1];
        let and = a.filter().and_then(|f| f.and()).expect("And filter");
        assert_eq!(and.prefix(), Some("attachments/"));
        assert_eq!(and.tags()[0].key(), "lifecycle");
        let tr: Vec<(i32, &str)> = a
            .transitions()
            .iter()
            .map(|t| (t.days().unwrap(), t.storage_class().unwrap().as_str()))
            .collect();
        assert_eq!(tr, vec![(30, "STANDARD_IA"), (365, "GLACIER")]);
        assert_eq!(
            a.noncurrent_version_expiration()
                .and_then(|n| n.noncurrent_days()),
            Some(30)
        );
        let e = &rules[2];
        assert_eq!(e.expiration().and_then(|x| x.days()), Some(14));
        assert_eq!(
            e.noncurrent_version_expiration()
                .and_then(|n| n.noncurrent_days()),
            Some(14)
        );
    }

    // Again: in sync, nothing written.
    let r = invoke(&d, json!({"action": "reconcile", "apply": true}))
        .await
        .unwrap();
    assert_eq!(r["status"], "IN_SYNC", "{r}");
    assert_eq!(r["drift_rules"], 0);
    for b in r["buckets"].as_array().unwrap() {
        assert_eq!(b["applied"], false);
        assert_eq!(b["in_sync"].as_array().unwrap().len(), 2);
    }
    // The report is in S3.
    let uri = r["report"]["json"].as_str().unwrap();
    let key = uri.strip_prefix(&format!("s3://{REPORTS}/")).unwrap();
    assert!(get(&s3, REPORTS, key).await.is_some());
}

#[tokio::test]
async fn an_invalid_policy_is_refused_with_the_field_named_and_nothing_written() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    create_buckets(&s3, &[PRIMARY, DR, REPORTS]).await;
    let d = deps(m).await;
    let bad_glacier = json!({"action": "reconcile", "apply": true, "policy": {
        "rules": [{"name": "attachments", "prefix": "attachments/",
                   "exceptions": [{"key": "legal_hold", "value": "true"}],
                   "transitions": [{"days": 30, "storage_class": "STANDARD_IA"},
                                   {"days": 45, "storage_class": "GLACIER"}]}]}});
    let e = invoke(&d, bad_glacier).await.unwrap_err();
    assert_eq!(e.class(), "InvalidInput");
    let msg = e.to_string();
    assert!(
        msg.contains("field `policy.rules[0].transitions[1].days`"),
        "{msg}"
    );
    assert!(msg.contains("at least 30 days"), "{msg}");

    let bad_ia = json!({"action": "reconcile", "apply": true, "policy": {
        "rules": [{"name": "a", "prefix": "attachments/",
                   "transitions": [{"days": 7, "storage_class": "STANDARD_IA"}]}]}});
    let msg = invoke(&d, bad_ia).await.unwrap_err().to_string();
    assert!(
        msg.contains("field `policy.rules[0].transitions[0].days`"),
        "{msg}"
    );

    let typo = json!({"action": "reconcile", "policy": {"rules": [{"name": "a", "prefix": "a/", "expire_days": 3}]}});
    let msg = invoke(&d, typo).await.unwrap_err().to_string();
    assert!(
        msg.contains("policy.rules[0]") && msg.contains("expire_days"),
        "{msg}"
    );

    for bucket in [PRIMARY, DR] {
        assert!(rules_of(&s3, bucket).await.is_empty(), "{bucket}");
    }
}
