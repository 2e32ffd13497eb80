//! lifecycle-enforcer under faults.
//!
//! Invariant, checked after every delivery: no legal-hold object is touched (its tag set is
//! exactly what the user put). At the end, a sweep carried through faults, failures and
//! redeliveries leaves every object with the same tags as a fault-free sweep of an identical
//! bucket: nothing skipped, nothing applied wrongly.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::types as s3t;
use fault_proxy::{ErrorKind, ResetPoint};
use fault_tests::{context, deliver_until_ok, Faulted, BURST, BURST_FRACTION};
use lambda_runtime::LambdaEvent;
use lifecycle_enforcer::handler::{handle, Continuation, Deps};
use lifecycle_enforcer::port::S3Lifecycle;
use lifecycle_enforcer::request::Defaults;
use serde_json::{json, Value};
use shared::config::{CommonConfig, Vars};
use shared::store::S3Store;
use suite_tests::{create_buckets, exclusive_moto, put};

const PRIMARY: &str = "lcf-primary";
const DR: &str = "lcf-dr";
const REPORTS: &str = "lcf-reports";

type D = Deps<S3Store, S3Lifecycle>;
type TagMap = BTreeMap<String, BTreeMap<String, String>>;

fn deps(s3: aws_sdk_s3::Client) -> D {
    Deps {
        common: CommonConfig {
            function_name: "lifecycle-enforcer".into(),
            environment: "local".into(),
            deployment: "faults".into(),
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
        store: S3Store::new(s3.clone()),
        port: S3Lifecycle::new(s3),
        lambda: None,
        continuation: Continuation::Return,
        margin: Duration::ZERO,
    }
}

async fn invoke(d: &D, payload: Value) -> Result<Value, shared::SuiteError> {
    handle(
        d,
        LambdaEvent::new(payload, context(Duration::from_secs(600))),
    )
    .await
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
        .unwrap();
}

/// The objects of one bucket: (key, tags); keys with "held" in them carry a legal hold.
fn layout() -> Vec<(String, Vec<(&'static str, &'static str)>)> {
    let mut v = vec![];
    for i in 0..12 {
        v.push((format!("attachments/new-{i:02}.pdf"), vec![("owner", "a")]));
    }
    for i in 0..4 {
        v.push((
            format!("attachments/held-{i}.pdf"),
            vec![("legal_hold", "true"), ("case", "c-1")],
        ));
    }
    v.push((
        "attachments/held-tagged.pdf".into(),
        vec![("lifecycle", "managed"), ("legal_hold", "TRUE")],
    ));
    v.push(("attachments/ok.pdf".into(), vec![("lifecycle", "managed")]));
    for i in 0..6 {
        v.push((format!("exports/e-{i}.csv"), vec![]));
    }
    v.push(("exports/held.csv".into(), vec![("legal_hold", "true")]));
    v.push(("other/untouched.bin".into(), vec![]));
    v
}

async fn seed(s3: &aws_sdk_s3::Client, bucket: &str) {
    create_buckets(s3, &[bucket]).await;
    for (k, tags) in layout() {
        put(s3, bucket, &k, format!("body of {k}")).await;
        if !tags.is_empty() {
            set_tags(s3, bucket, &k, &tags).await;
        }
    }
}

async fn all_tags(s3: &aws_sdk_s3::Client, bucket: &str) -> TagMap {
    let out = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    let mut m = BTreeMap::new();
    for o in out.contents() {
        let k = o.key().unwrap().to_string();
        let t = s3
            .get_object_tagging()
            .bucket(bucket)
            .key(&k)
            .send()
            .await
            .unwrap();
        m.insert(
            k,
            t.tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
        );
    }
    m
}

/// The invariant: no legal-hold object is touched. Nothing is added to its tags and no value
/// changes; the one change allowed is the removal of a `lifecycle` tag it already had (that
/// takes it out of the expiring rules, which is what honouring the hold means).
async fn holds_untouched(s3: &aws_sdk_s3::Client, bucket: &str) {
    let tags = all_tags(s3, bucket).await;
    for (k, want) in layout() {
        // Every rule honours `legal_hold=true` (`attachments/` and `exports/` alike).
        if !k.contains("held") {
            continue;
        }
        let have = &tags[&k];
        for (tk, tv) in have {
            assert!(
                want.iter().any(|(a, b)| a == tk && b == tv),
                "legal-hold object {k} was touched: {tk}={tv} is not the user's ({have:?})"
            );
        }
        for (a, b) in &want {
            if *a != "lifecycle" {
                assert_eq!(
                    have.get(*a).map(String::as_str),
                    Some(*b),
                    "legal-hold object {k} lost {a}"
                );
            }
        }
    }
}

/// A checkpointed sweep (one page of 3 keys per invocation), driven to the end: continuations
/// follow `resume`; a failed invocation is delivered again as it was.
async fn sweep_to_the_end(
    d: &D,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    run_id: &str,
) -> (Value, usize) {
    let mut payload = json!({"action": "sweep", "buckets": [bucket], "run_id": run_id,
                             "page_size": 3, "max_runtime_seconds": 0});
    let mut failures = 0;
    for _ in 0..80 {
        let out = deliver_until_ok(
            8,
            || invoke(d, payload.clone()),
            || holds_untouched(s3, bucket),
        )
        .await;
        failures += out.errors.len();
        let v = out.result;
        if v["status"] != "IN_PROGRESS" {
            return (v, failures);
        }
        assert!(v["resume"].is_object(), "a continuation is lost: {v}");
        payload = json!({"resume": v["resume"], "max_runtime_seconds": 0});
    }
    panic!("the sweep did not finish");
}

async fn sweep_under(setup: impl Fn(&Faulted), tag: &str) -> Faulted {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    create_buckets(&s3, &[PRIMARY, DR, REPORTS]).await;
    let base = format!("lcf-{tag}-base");
    let faulty = format!("lcf-{tag}-faulty");
    seed(&s3, &base).await;
    seed(&s3, &faulty).await;
    // The reference: the same sweep with no proxy at all.
    let (expected, _) = sweep_to_the_end(&deps(s3.clone()), &s3, &base, "base").await;
    // 18 get the managed tag: the held export is an exception like the held attachments.
    assert_eq!(expected["totals"]["tagged"], 18, "{expected}");

    let f = Faulted::new(m).await;
    setup(&f);
    let (v, failures) = sweep_to_the_end(&deps(f.s3()), &s3, &faulty, "faulty").await;
    f.proxy.clear();
    holds_untouched(&s3, &faulty).await;
    assert_eq!(
        all_tags(&s3, &base).await,
        all_tags(&s3, &faulty).await,
        "{v}"
    );
    assert_eq!(v["totals"]["scanned"], expected["totals"]["scanned"], "{v}");
    eprintln!(
        "{tag}: {failures} failed invocations, proxy {:?}",
        f.proxy.stats()
    );
    f
}

#[tokio::test]
async fn a_checkpointed_sweep_through_a_burst_of_503_and_500_touches_no_legal_hold() {
    let f = sweep_under(
        |f| {
            f.proxy.seed(3);
            f.proxy.error_burst(BURST_FRACTION, BURST, ErrorKind::Mixed)
        },
        "burst",
    )
    .await;
    assert!(
        f.proxy.stats().injected_errors() > 0,
        "{:?}",
        f.proxy.stats()
    );
}

#[tokio::test]
async fn a_sweep_through_connection_resets_and_an_outage_touches_no_legal_hold() {
    let f = sweep_under(
        |f| {
            f.proxy.seed(5);
            f.proxy.connection_resets(0.2, BURST, ResetPoint::Mixed);
            f.proxy
                .outage(Duration::from_millis(500), Duration::from_millis(1000));
        },
        "resets",
    )
    .await;
    let s = f.proxy.stats();
    assert!(s.resets > 0 && s.down > 0, "{s:?}");
}

#[tokio::test]
async fn events_through_resets_and_an_outage_tag_each_object_once_and_skip_holds() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    create_buckets(&s3, &[DR, REPORTS]).await;
    seed(&s3, PRIMARY).await;
    let f = Faulted::new(m).await;
    let d = deps(f.s3());
    let keys: Vec<String> = layout().into_iter().map(|(k, _)| k).collect();
    let refs: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "0A")).collect();
    f.proxy.seed(9);
    f.proxy.connection_resets(0.2, BURST, ResetPoint::Mixed);
    f.proxy
        .error_burst(BURST_FRACTION, BURST, ErrorKind::SlowDown);
    let outage = async {
        // Once the run is a few requests in, not after a fixed delay a fast machine outruns.
        for _ in 0..1000 {
            if f.proxy.stats().forwarded >= 10 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        f.proxy.set_down(true);
        tokio::time::sleep(Duration::from_millis(800)).await;
        f.proxy.set_down(false);
    };
    let event = crate::s3_event(PRIMARY, &refs);
    let (out, ()) = tokio::join!(
        deliver_until_ok(
            8,
            || invoke(&d, event.clone()),
            || holds_untouched(&s3, PRIMARY)
        ),
        outage
    );
    f.proxy.clear();
    holds_untouched(&s3, PRIMARY).await;
    let tags = all_tags(&s3, PRIMARY).await;
    for (k, t) in &tags {
        let managed = t.get("lifecycle").map(String::as_str) == Some("managed");
        if k.starts_with("attachments/new-") || (k.starts_with("exports/e-")) {
            assert!(managed, "{k} not tagged: {t:?} {}", out.result);
        }
        if k.starts_with("other/") {
            assert!(t.is_empty(), "{k}: {t:?}");
        }
    }
    eprintln!(
        "events: {} deliveries {:?}, proxy {:?}",
        out.attempts,
        out.errors,
        f.proxy.stats()
    );
}

/// At-least-once with a legal hold arriving in between: the object is created (event 0A), the
/// user puts a legal hold on it (event 0B). Deliveries arrive reordered (0B first), duplicated
/// (0A twice at once, then again). The held object must never be tagged.
#[tokio::test]
async fn reordered_and_duplicate_deliveries_never_tag_an_object_put_on_hold() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    create_buckets(&s3, &[PRIMARY, DR, REPORTS]).await;
    let f = Faulted::new(m).await;
    let d = deps(f.s3());
    let key = "attachments/contract.pdf";
    put(&s3, PRIMARY, key, "signed").await;
    set_tags(&s3, PRIMARY, key, &[("legal_hold", "true")]).await;
    let want: BTreeMap<String, String> = [("legal_hold".to_string(), "true".to_string())].into();
    let created = crate::s3_event(PRIMARY, &[(key, "0A")]);
    let mut tagged = created.clone();
    tagged["Records"][0]["eventName"] = json!("ObjectTagging:Put");
    tagged["Records"][0]["s3"]["object"]["sequencer"] = json!("0B");

    let r = invoke(&d, tagged.clone()).await.unwrap();
    assert_ne!(r["results"][0]["outcome"], "tagged", "{r}");
    let (a, b) = tokio::join!(invoke(&d, created.clone()), invoke(&d, created.clone()));
    for r in [a, b] {
        let r = r.unwrap();
        assert_ne!(r["results"][0]["outcome"], "tagged", "{r}");
    }
    let r = invoke(&d, tagged).await.unwrap();
    assert_ne!(r["results"][0]["outcome"], "tagged", "{r}");
    assert_eq!(all_tags(&s3, PRIMARY).await[key], want);

    // And the same object without a hold, delivered twice at once: tagged once, the user's
    // tags kept.
    let k2 = "attachments/plain.pdf";
    put(&s3, PRIMARY, k2, "x").await;
    set_tags(&s3, PRIMARY, k2, &[("owner", "o")]).await;
    let ev = crate::s3_event(PRIMARY, &[(k2, "0C")]);
    let (a, b) = tokio::join!(invoke(&d, ev.clone()), invoke(&d, ev.clone()));
    let outcomes = [a.unwrap(), b.unwrap()].map(|r| r["results"][0]["outcome"].clone());
    assert!(
        outcomes.contains(&json!("tagged")) || outcomes.contains(&json!("compliant")),
        "{outcomes:?}"
    );
    let t = &all_tags(&s3, PRIMARY).await[k2];
    assert_eq!(t.get("owner").map(String::as_str), Some("o"));
    assert_eq!(t.get("lifecycle").map(String::as_str), Some("managed"));
    assert_eq!(t.len(), 2, "{t:?}");
}

/// Once a policy gap: an `exports/` object on legal hold got `lifecycle=managed` and so
/// expired with the 14-day exports rule. The exports rule now lists `legal_hold=true` among
/// its exceptions.
#[tokio::test]
async fn an_export_on_legal_hold_is_not_tagged_to_expire() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    create_buckets(&s3, &[PRIMARY, DR, REPORTS]).await;
    let d = deps(s3.clone());
    let key = "exports/court-order.csv";
    put(&s3, PRIMARY, key, "a,b\n").await;
    set_tags(&s3, PRIMARY, key, &[("legal_hold", "true")]).await;
    invoke(&d, crate::s3_event(PRIMARY, &[(key, "0A")]))
        .await
        .unwrap();
    let tags = &all_tags(&s3, PRIMARY).await[key];
    assert_eq!(
        tags.get("lifecycle"),
        None,
        "a held export must not expire: {tags:?}"
    );
}
