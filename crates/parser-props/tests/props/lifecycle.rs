//! lifecycle-enforcer: S3 events with sequencers, the request payload (sweep, reconcile,
//! resume), and policy documents.

use lifecycle_enforcer::handler::objects_of;
use lifecycle_enforcer::policy::{Policy, PolicyDoc};
use lifecycle_enforcer::request::{parse_payload, Defaults};
use lifecycle_enforcer::sequencer::Sequencer;
use parser_props::{arb_json, mutate, Mutation};
use proptest::prelude::*;
use serde_json::{json, Value};
use shared::config::Vars;

fn defaults() -> Defaults {
    Defaults::from_vars(&Vars::from_pairs([
        ("PRIMARY_BUCKET", "p-bucket"),
        ("REPLICA_BUCKET", "dr-bucket"),
    ]))
    .unwrap()
}

fn policy_payloads() -> Vec<Value> {
    let doc = serde_json::to_value(PolicyDoc::playbook()).unwrap();
    vec![json!({"action": "reconcile", "apply": true, "policy": doc})]
}

/// Parse and validate as the handler does; the error message if any.
fn run(v: &Value) -> Result<(), String> {
    if shared::events::is_s3_event(v) {
        return objects_of(v).map(|_| ()).map_err(|e| e.to_string());
    }
    let p = parse_payload(v).map_err(|e| e.to_string())?;
    p.validate(&defaults(), chrono::Utc::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

proptest! {
    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let _ = run(&v);
        let _ = run(&json!({"action": "reconcile", "policy": v.clone()}));
        let _ = run(&json!({"Records": [{"s3": {"bucket": {"name": "b"}, "object": {"key": "k", "sequencer": v}}}]}));
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(v) = serde_json::from_slice::<Value>(&b) {
            let _ = run(&v);
        }
        let _ = Sequencer::parse(&String::from_utf8_lossy(&b));
    }

    /// Sequencers order like AWS says: left-pad with zeros, compare.
    #[test]
    fn sequencers_order_by_padded_value(a in "[0-9A-Fa-f]{1,20}", b in "[0-9A-Fa-f]{1,20}") {
        let (sa, sb) = (Sequencer::parse(&a).unwrap(), Sequencer::parse(&b).unwrap());
        let n = a.len().max(b.len());
        let pa = format!("{:0>n$}", a.to_ascii_uppercase());
        let pb = format!("{:0>n$}", b.to_ascii_uppercase());
        prop_assert_eq!(sa.cmp(&sb), pa.cmp(&pb));
    }

    #[test]
    fn event_mutations_name_the_field(m in mutate(crate::samples("lifecycle-enforcer").into_iter().filter(shared::events::is_s3_event).collect())) {
        if let Err(msg) = run(&m.doc) {
            let field = m.field.clone().unwrap_or_default();
            prop_assert!(crate::names(&msg, &field), "{msg} does not name {field}: {:?} {:?}", m.path, m.mutation);
        }
    }

    #[test]
    fn payload_mutations_name_the_field(m in mutate(crate::samples("lifecycle-enforcer").into_iter().filter(|v| !shared::events::is_s3_event(v)).collect())) {
        if let Err(msg) = run(&m.doc) {
            let field = m.field.clone().unwrap_or_default();
            prop_assert!(crate::names(&msg, &field) || (matches!(m.mutation, Mutation::Remove) && msg.contains("action")),
                "{msg} does not name {field}: {:?} {:?}", m.path, m.mutation);
        }
    }

    #[test]
    fn policy_mutations_name_the_field(m in mutate(policy_payloads())) {
        if let Err(msg) = run(&m.doc) {
            let field = m.field.clone().unwrap_or_default();
            prop_assert!(crate::names(&msg, &field), "{msg} does not name {field}: {:?} {:?}", m.path, m.mutation);
        }
    }

    #[test]
    fn valid_policies_validate(doc in Just(PolicyDoc::playbook())) {
        prop_assert!(Policy::validate(doc).is_ok());
    }
}
