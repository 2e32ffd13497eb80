//! shared::events: S3 notifications, EventBridge S3 events, s3:TestEvent, and key decoding.

use parser_props::{arb_json, mutate, Mutation};
use proptest::prelude::*;
use serde_json::{json, Value};
use shared::events::{decode_s3_event_key, is_s3_event, parse_s3_event};

fn valid() -> Vec<Value> {
    vec![
        json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"},
               "object": {"key": "a/b+c%2B.csv", "size": 3, "sequencer": "0A"}}}]}),
        json!({"source": "aws.s3", "detail-type": "Object Created",
               "detail": {"bucket": {"name": "b"}, "object": {"key": "k", "size": 1, "sequencer": "0B"}}}),
    ]
}

proptest! {
    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let _ = is_s3_event(&v);
        let _ = parse_s3_event(&v);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(v) = serde_json::from_slice::<Value>(&b) {
            let _ = parse_s3_event(&v);
        }
        let _ = decode_s3_event_key(&String::from_utf8_lossy(&b));
    }

    /// S3 form-encodes keys in notifications; decoding gives the key back, whatever it is.
    #[test]
    fn key_encoding_round_trips(key in any::<String>()) {
        let enc: String = form_urlencoded_encode(&key);
        prop_assert_eq!(decode_s3_event_key(&enc), key);
    }

    #[test]
    fn mutations_name_the_field(m in mutate(valid())) {
        if let Err(e) = parse_s3_event(&m.doc) {
            let msg = e.to_string();
            let field = m.field.clone().unwrap_or_default();
            // A removed or retyped `Records`/`s3`/`bucket`/`object` is reported at the leaf
            // the parser needs (e.g. `Records[0].s3.bucket.name`), which contains it.
            prop_assert!(crate::names(&msg, &field), "{msg} does not name {field}: {:?} {:?}", m.path, m.mutation);
        }
        if let (Some(f), Mutation::Remove) = (&m.field, &m.mutation) {
            if ["name", "key"].contains(&f.as_str()) {
                prop_assert!(parse_s3_event(&m.doc).is_err(), "a missing {f} is an error");
            }
        }
    }
}

fn form_urlencoded_encode(key: &str) -> String {
    // What S3 does: each byte form-encoded (space as `+`).
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' | b'/' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
