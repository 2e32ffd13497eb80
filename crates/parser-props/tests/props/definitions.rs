//! The definitions engineers write by hand: load-test scenario files (events/loadtest/), k6
//! threshold expressions, the SLO file (infra/slo/slos.json) and the chaos experiment registry
//! (events/chaos-runner/experiments*.json); and the manual/scheduled payloads of the
//! load-test coordinator and the chaos runner. None panics on any input; a mutation of a valid
//! file that makes it invalid gets an error naming the field touched (or, for the SLO file's
//! checks across fields, the SLO and the field).

use chrono::NaiveDate;
use parser_props::{arb_json, mutate, Mutated};
use proptest::prelude::*;
use serde_json::Value;

fn files(dir: &str, keep: impl Fn(&str) -> bool) -> Vec<Value> {
    parser_props::json_files(&crate::root().join(dir))
        .into_iter()
        .filter(|(p, _)| keep(p))
        .map(|(_, v)| v)
        .collect()
}

fn scenarios() -> Vec<Value> {
    let out = files("events/loadtest", |p| !p.ends_with("shard-request.json"));
    assert!(out.len() >= 6, "the shipped scenarios: {}", out.len());
    out
}

fn registries() -> Vec<Value> {
    let out = files("events/chaos-runner", |p| p.contains("experiments"));
    assert!(!out.is_empty());
    out
}

fn slo_files() -> Vec<Value> {
    let text = std::fs::read_to_string(crate::root().join("infra/slo/slos.json")).expect("slos");
    vec![serde_json::from_str(&text).expect("slos.json")]
}

fn scenario(v: &Value) -> Result<loadtest_core::scenario::Scenario, String> {
    loadtest_core::scenario::parse_scenario(v.to_string().as_bytes()).map_err(|e| e.to_string())
}

fn registry(v: &Value) -> Result<(), String> {
    chaos_runner::registry::Registry::parse(&v.to_string())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn slos(v: &Value) -> Result<(), String> {
    let f = slo::parse(&v.to_string()).map_err(|e| e.to_string())?;
    slo::plan(&f).map(|_| ()).map_err(|e| e.to_string())
}

/// The error names the field touched. Two readings of "the field" follow serde's:
/// - The scenario's request body and the registry's FIS template and error-budget source are
///   externally tagged enums (`{"text": …}`, `{"id": …}`, `{"metric": {…}}`). Inside a
///   variant the path is exact (`request.body.csv_records.records`), but when the mutation
///   touches the variant's tag itself (renamed, removed, a second one added) the choice of
///   shape is what is wrong, and the error names the enum's field (`request.body: unknown
///   variant …`). Only that case is accepted: the mutated key must be the tag, directly
///   under `body`, `fis_template` or `source`.
/// - A null in place of an optional field means "absent" (serde's reading), so the error
///   names what is then missing (the coordinator's `scenario` for a null `continuation`).
fn named(msg: &str, m: &Mutated) -> bool {
    use parser_props::Step;
    let keys: Vec<&str> = m
        .path
        .iter()
        .filter_map(|s| match s {
            Step::Key(k) => Some(k.as_str()),
            Step::Index(_) => None,
        })
        .collect();
    let field = m.field.clone().unwrap_or_default();
    let tag_of_enum = matches!(m.path.last(), Some(Step::Key(_)))
        && keys.len() >= 2
        && ["body", "fis_template", "source"].contains(&keys[keys.len() - 2])
        && msg.contains(keys[keys.len() - 2]);
    crate::names(msg, &field)
        || tag_of_enum
        || (matches!(&m.mutation, parser_props::Mutation::Replace(v) if v.is_null())
            && msg.contains("is missing"))
}

#[test]
fn the_shipped_definitions_are_valid() {
    for s in scenarios() {
        scenario(&s).unwrap_or_else(|e| panic!("{}: {e}", s["name"]));
    }
    for r in registries() {
        registry(&r).unwrap();
    }
    for f in slo_files() {
        slos(&f).unwrap();
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&b);
        let _ = loadtest_core::scenario::parse_scenario(&b);
        let _ = loadtest_core::scenario::parse_duration(&text);
        let _ = loadtest_coordinator::threshold::parse_expr(&text);
        let _ = chaos_runner::registry::Registry::parse(&text);
        if let Ok(f) = slo::parse(&text) {
            let _ = slo::plan(&f);
        }
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let _ = scenario(&v);
        let _ = registry(&v);
        let _ = slos(&v);
        let _ = loadtest_coordinator::handler::parse_event(&v);
        let _ = chaos_runner::handler::parse_event(&v, NaiveDate::from_ymd_opt(2026, 11, 6).unwrap());
    }

    #[test]
    fn threshold_expressions_parse_or_say_why(
        agg in prop_oneof![
            proptest::sample::select(vec!["p(95)", "p(99.9)", "avg", "max", "rate", "count", "p(x)", "p(101)"]).prop_map(str::to_string),
            "[a-z()0-9.]{0,6}",
        ],
        op in prop_oneof![Just("<"), Just("<="), Just(">"), Just(">="), Just("=="), Just("!="), Just("<>"), Just("")],
        n in prop_oneof![
            proptest::sample::select(vec!["900", "0.005", "-1", "NaN", "inf"]).prop_map(str::to_string),
            "[0-9a-z.e+-]{0,6}",
        ],
        space in prop_oneof![Just(""), Just(" ")],
    ) {
        let expr = format!("{agg}{space}{op}{space}{n}");
        match loadtest_coordinator::threshold::parse_expr(&expr) {
            Ok((_, _, v)) => prop_assert!(v.is_finite(), "{expr} gave {v}"),
            Err(e) => prop_assert!(!e.is_empty(), "{expr}: empty error"),
        }
    }

    #[test]
    fn mutated_scenarios_name_the_field(m in mutate(scenarios())) {
        if let Err(e) = scenario(&m.doc) {
            prop_assert!(named(&e, &m), "{e} does not name {:?}: {:?} {:?}", m.field, m.path, m.mutation);
        }
    }

    #[test]
    fn mutated_registries_name_the_field(m in mutate(registries())) {
        if let Err(e) = registry(&m.doc) {
            prop_assert!(named(&e, &m), "{e} does not name {:?}: {:?} {:?}", m.field, m.path, m.mutation);
        }
    }

    #[test]
    fn mutated_slo_files_name_the_field(m in mutate(slo_files())) {
        if let Err(e) = slos(&m.doc) {
            prop_assert!(named(&e, &m), "{e} does not name {:?}: {:?} {:?}", m.field, m.path, m.mutation);
        }
    }

    #[test]
    fn mutated_coordinator_events_name_the_field(m in mutate(crate::samples("loadtest-coordinator"))) {
        if let Err(e) = loadtest_coordinator::handler::parse_event(&m.doc) {
            let msg = e.to_string();
            prop_assert!(named(&msg, &m), "{msg} does not name {:?}: {:?} {:?}", m.field, m.path, m.mutation);
        }
    }

    #[test]
    fn mutated_chaos_events_name_the_field(m in mutate(files("events/chaos-runner", |p| !p.contains("experiments")))) {
        if let Err(e) = chaos_runner::handler::parse_event(&m.doc, NaiveDate::from_ymd_opt(2026, 11, 6).unwrap()) {
            let msg = e.to_string();
            prop_assert!(named(&msg, &m), "{msg} does not name {:?}: {:?} {:?}", m.field, m.path, m.mutation);
        }
    }
}
