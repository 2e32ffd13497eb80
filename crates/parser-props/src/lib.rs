//! Strategies shared by the property tests in tests/props/: arbitrary JSON biased towards the
//! field names the functions look for (so random documents reach deep into the parsers), and
//! structured mutations of valid documents (a field removed, or its value replaced by one of
//! another type) that know which field they touched.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Field names the parsers read: random objects use them half of the time.
pub const FIELDS: &[&str] = &[
    "Records",
    "s3",
    "bucket",
    "name",
    "object",
    "key",
    "size",
    "sequencer",
    "eventName",
    "Event",
    "source",
    "detail",
    "detail-type",
    "action",
    "buckets",
    "policy",
    "rules",
    "prefix",
    "transitions",
    "days",
    "storage_class",
    "exceptions",
    "value",
    "resume",
    "run_id",
    "sequence",
    "dry_run",
    "apply",
    "page_size",
    "max_runtime_seconds",
    "force",
    "prefixes",
    "primary_bucket",
    "replica_bucket",
    "primary_inventory",
    "replica_inventory",
    "primary_manifest",
    "replica_manifest",
    "drift_threshold_percent",
    "lag_allowance_hours",
    "now",
    "rebuild_rollup",
    "sourceBucket",
    "destinationBucket",
    "fileFormat",
    "fileSchema",
    "files",
    "MD5checksum",
    "creationTimestamp",
    "aws.s3",
    "expire_days",
    "managed_tag",
];

pub fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(FIELDS).prop_map(str::to_string),
        "[a-zA-Z_]{0,8}",
    ]
}

pub fn arb_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        proptest::sample::select(FIELDS).prop_map(Value::from),
        // Strings the parsers treat specially: URIs, dates, hex, encoded keys, huge/odd ones.
        proptest::sample::select(
            &[
                "s3://b/k",
                "s3://",
                "s3:///x",
                "2026-11",
                "2026-13",
                "sweep",
                "reconcile",
                "list",
                "inventory",
                "aws.s3",
                "ObjectCreated:Put",
                "ObjectTagging:Put",
                "s3:TestEvent",
                "0A",
                "ffffffffffffffffffffffffffffffffff",
                "%ZZ",
                "a+b%2B",
                "",
                " ",
                "\u{0}",
                "GLACIER",
                "STANDARD_IA",
                "-1",
                "1e400",
                "NaN",
            ][..]
        )
        .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
}

pub fn arb_json() -> impl Strategy<Value = Value> {
    arb_leaf().prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((arb_key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// Every path in `v` (objects' fields and arrays' elements), parents before children.
pub fn paths(v: &Value) -> Vec<Vec<Step>> {
    fn walk(v: &Value, cur: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    cur.push(Step::Key(k.clone()));
                    out.push(cur.clone());
                    walk(c, cur, out);
                    cur.pop();
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    cur.push(Step::Index(i));
                    out.push(cur.clone());
                    walk(c, cur, out);
                    cur.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = vec![];
    walk(v, &mut vec![], &mut out);
    out
}

/// The mutation applied.
#[derive(Debug, Clone)]
pub enum Mutation {
    Remove,
    Replace(Value),
}

/// A valid document mutated at one path. `field` is the name of the touched field (for an
/// array element, the array's field), which an error about it should mention.
#[derive(Debug, Clone)]
pub struct Mutated {
    pub doc: Value,
    pub path: Vec<Step>,
    pub field: Option<String>,
    pub mutation: Mutation,
}

pub fn apply(doc: &Value, path: &[Step], m: &Mutation) -> Value {
    let mut out = doc.clone();
    let mut cur = &mut out;
    for step in &path[..path.len() - 1] {
        cur = match step {
            Step::Key(k) => &mut cur[k.as_str()],
            Step::Index(i) => &mut cur[*i],
        };
    }
    match (path.last(), m) {
        (Some(Step::Key(k)), Mutation::Remove) => {
            if let Value::Object(o) = cur {
                o.remove(k);
            }
        }
        (Some(Step::Index(i)), Mutation::Remove) => {
            if let Value::Array(a) = cur {
                a.remove(*i);
            }
        }
        (Some(Step::Key(k)), Mutation::Replace(v)) => cur[k.as_str()] = v.clone(),
        (Some(Step::Index(i)), Mutation::Replace(v)) => cur[*i] = v.clone(),
        (None, _) => {}
    }
    out
}

/// Mutations of one of `valid`.
pub fn mutate(valid: Vec<Value>) -> impl Strategy<Value = Mutated> {
    proptest::sample::select(valid)
        .prop_flat_map(|doc| {
            let ps = paths(&doc);
            let n = ps.len().max(1);
            (Just(doc), Just(ps), 0..n, any::<bool>(), arb_leaf())
        })
        .prop_map(|(doc, ps, i, remove, leaf)| {
            if ps.is_empty() {
                return Mutated {
                    doc: doc.clone(),
                    path: vec![],
                    field: None,
                    mutation: Mutation::Replace(doc),
                };
            }
            let path = ps[i].clone();
            let mutation = if remove {
                Mutation::Remove
            } else {
                Mutation::Replace(leaf)
            };
            let field = path.iter().rev().find_map(|s| match s {
                Step::Key(k) => Some(k.clone()),
                Step::Index(_) => None,
            });
            Mutated {
                doc: apply(&doc, &path, &mutation),
                path,
                field,
                mutation,
            }
        })
}

/// Reads every `*.json` file of a directory (the event samples, the corpus).
pub fn json_files(dir: &std::path::Path) -> Vec<(String, Value)> {
    let mut out = vec![];
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.extension().and_then(|e| e.to_str()) == Some("json") {
            if let Ok(v) = serde_json::from_slice(&std::fs::read(&p).unwrap_or_default()) {
                out.push((p.display().to_string(), v));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_and_mutations() {
        let d = json!({"a": [1, {"b": 2}]});
        let ps = paths(&d);
        assert_eq!(ps.len(), 4);
        let m = apply(&d, &ps[3], &Mutation::Remove);
        assert_eq!(m, json!({"a": [1, {}]}));
        let m = apply(&d, &ps[1], &Mutation::Replace(json!("x")));
        assert_eq!(m, json!({"a": ["x", {"b": 2}]}));
    }
}
