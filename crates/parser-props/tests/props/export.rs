//! export-compressor: S3/EventBridge events and the manual payloads
//! (`{"bucket","key"}`, `{"rebuild_rollup"}`), and the month parser.

use export_compressor::handler::parse_event;
use export_compressor::plan::parse_month;
use parser_props::{arb_json, mutate};
use proptest::prelude::*;
use serde_json::{json, Value};

proptest! {
    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let _ = parse_event(&v);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(v) = serde_json::from_slice::<Value>(&b) {
            let _ = parse_event(&v);
        }
        let _ = parse_month(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn months_parse_only_when_valid(y in 0u32..10000, m in 0u32..20, junk in "[^0-9]{0,3}") {
        let s = format!("{y:04}-{m:02}{junk}");
        match parse_month(&s) {
            Ok(out) => {
                prop_assert!((1..=12).contains(&m) && junk.trim().is_empty(), "{s} accepted as {out}");
                prop_assert_eq!(out, format!("{y:04}-{m:02}"));
            }
            Err(p) => prop_assert!(!p.is_empty()),
        }
    }

    #[test]
    fn mutations_of_events_name_the_field(m in mutate(crate::samples("export-compressor"))) {
        if let Err(e) = parse_event(&m.doc) {
            let msg = e.to_string();
            let field = m.field.clone().unwrap_or_default();
            prop_assert!(crate::names(&msg, &field) || msg.contains("bucket and key"),
                "{msg} does not name {field}: {:?} {:?}", m.path, m.mutation);
        }
    }
}

/// Once a gap: a manual payload field of the wrong type was reported as `payload`. The
/// handler now parses it with serde_path_to_error.
#[test]
fn manual_payload_type_error_names_the_field() {
    let e = parse_event(&json!({"bucket": 5, "key": "exports/a.csv"}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`bucket`"), "{e}");
}

/// Once a bug: `parse_month` accepted a sign in the month (`"2026-+1"`), because it parsed the
/// month with `str::parse::<u32>`, which takes a leading `+`. Key names built from it then
/// differed from the ones the run writes (`2026-01`). Now `s[5..]` must be two ASCII digits.
#[test]
fn month_with_a_sign_is_refused() {
    assert!(parse_month("2026-+1").is_err());
}
