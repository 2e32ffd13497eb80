//! The regression corpus: every file under corpus/<parser>/ is replayed through its parser as
//! an ordinary test. Files are inputs that once found a problem, or that sit on an edge
//! (empty, huge numbers, odd encodings). A file whose name starts with `bad-` must be refused
//! with an error naming the field given in the file's `_expect_field` (JSON) — the key is
//! removed before parsing.

use serde_json::Value;

fn corpus(dir: &str) -> Vec<(String, Value)> {
    parser_props::json_files(&crate::root().join("crates/parser-props/corpus").join(dir))
}

fn check(name: &str, v: &Value, parse: impl Fn(&Value) -> Result<(), String>) {
    let mut doc = v.clone();
    let expect = doc
        .as_object_mut()
        .and_then(|o| o.remove("_expect_field"))
        .and_then(|f| f.as_str().map(str::to_string));
    let r = parse(&doc);
    let file = std::path::Path::new(name)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    if file.starts_with("bad-") {
        let msg = r.expect_err(&format!("{file} must be refused"));
        if let Some(f) = expect {
            assert!(msg.contains(&f), "{file}: {msg} does not name {f}");
        }
    }
}

#[test]
fn corpus_replays() {
    let mut n = 0;
    for (name, v) in corpus("events") {
        check(&name, &v, |d| {
            shared::events::parse_s3_event(d)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        n += 1;
    }
    for (name, v) in corpus("export-compressor") {
        check(&name, &v, |d| {
            export_compressor::handler::parse_event(d)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        n += 1;
    }
    for (name, v) in corpus("lifecycle-enforcer") {
        check(&name, &v, |d| {
            if shared::events::is_s3_event(d) {
                return lifecycle_enforcer::handler::objects_of(d)
                    .map(|_| ())
                    .map_err(|e| e.to_string());
            }
            let p = lifecycle_enforcer::request::parse_payload(d).map_err(|e| e.to_string())?;
            let defaults = lifecycle_enforcer::request::Defaults::from_vars(
                &shared::config::Vars::from_pairs([("PRIMARY_BUCKET", "p-bucket")]),
            )
            .unwrap();
            p.validate(&defaults, chrono::Utc::now())
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        n += 1;
    }
    for (name, v) in corpus("manifest-diff") {
        check(&name, &v, |d| {
            crate::manifest::run_handler(d.clone())
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        n += 1;
    }
    for (name, v) in corpus("inventory-manifest") {
        check(&name, &v, |d| {
            manifest_diff::inventory::Manifest::parse(&serde_json::to_vec(d).unwrap(), None)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        n += 1;
    }
    assert!(n >= 10, "the corpus has {n} files");
}
