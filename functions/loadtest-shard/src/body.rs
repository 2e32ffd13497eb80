//! Request bodies from the scenario's body spec, rendered per request index.

use bytes::Bytes;
use loadtest_core::BodySpec;
use shared::SuiteError;

#[derive(Debug, Clone)]
pub enum BodyTemplate {
    Empty,
    /// The same bytes every time (cloning `Bytes` is a reference count).
    Static(Bytes),
    /// Text split at each `{{i}}`; the index goes between the parts.
    Parts(Vec<String>),
    Csv {
        records: u32,
        header: Vec<String>,
    },
}

impl BodyTemplate {
    pub fn from_spec(spec: Option<&BodySpec>) -> Result<Self, SuiteError> {
        let text = match spec {
            None => return Ok(BodyTemplate::Empty),
            Some(BodySpec::Text(t)) => t.clone(),
            // `{{i}}` can only occur inside JSON strings, so replacing it in the serialized
            // text replaces exactly the string values (and keys) that hold it.
            Some(BodySpec::Json(v)) => v.to_string(),
            Some(BodySpec::File(f)) => {
                return Err(SuiteError::invalid(
                    "scenario.request.body.file",
                    format!("the shard reads no files ({f:?})"),
                    "the coordinator inlines body files as `text` before invoking shards; send `{\"text\": ...}`",
                ))
            }
            Some(BodySpec::CsvRecords { records, header }) => {
                if header.is_empty() {
                    return Err(SuiteError::invalid(
                        "scenario.request.body.csv_records.header",
                        "is empty",
                        "name the columns, e.g. [\"sku\", \"name\", \"quantity\", \"unit_price\"]",
                    ));
                }
                return Ok(BodyTemplate::Csv {
                    records: *records,
                    header: header.clone(),
                });
            }
        };
        if text.contains("{{i}}") {
            Ok(BodyTemplate::Parts(
                text.split("{{i}}").map(str::to_string).collect(),
            ))
        } else {
            Ok(BodyTemplate::Static(Bytes::from(text)))
        }
    }

    /// The content type used when the scenario's headers name none.
    pub fn default_content_type(spec: Option<&BodySpec>) -> Option<&'static str> {
        match spec {
            None => None,
            Some(BodySpec::Json(_)) => Some("application/json"),
            Some(BodySpec::CsvRecords { .. }) => Some("text/csv"),
            Some(_) => Some("text/plain; charset=utf-8"),
        }
    }

    pub fn render(&self, i: u64) -> Bytes {
        match self {
            BodyTemplate::Empty => Bytes::new(),
            BodyTemplate::Static(b) => b.clone(),
            BodyTemplate::Parts(parts) => {
                let idx = i.to_string();
                let mut s =
                    String::with_capacity(parts.iter().map(|p| p.len()).sum::<usize>() + 24);
                for (k, p) in parts.iter().enumerate() {
                    if k > 0 {
                        s.push_str(&idx);
                    }
                    s.push_str(p);
                }
                Bytes::from(s)
            }
            BodyTemplate::Csv { records, header } => Bytes::from(csv_body(i, *records, header)),
        }
    }
}

fn mix(mut z: u64) -> u64 {
    // splitmix64: a deterministic, well-spread value per (request, record, column).
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const WORDS: [&str; 12] = [
    "anchor", "basil", "cobalt", "delta", "ember", "fjord", "garnet", "harbor", "indigo",
    "juniper", "kestrel", "lumen",
];

/// `records` CSV rows under `header`, the same for the same index `i` on every shard and
/// every run; values are picked by column name (`*id` unique per request and row, `email`,
/// `amount`/`price`/`total`, `date`/`*_at`, `qty`/`quantity`/`count`, else a word).
pub fn csv_body(i: u64, records: u32, header: &[String]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(32 + records as usize * header.len() * 12);
    s.push_str(&header.join(","));
    s.push('\n');
    for r in 0..u64::from(records) {
        for (c, name) in header.iter().enumerate() {
            if c > 0 {
                s.push(',');
            }
            let h = mix(i.wrapping_mul(1_000_003) ^ (r << 20) ^ c as u64);
            let n = name.to_ascii_lowercase();
            let _ = if n == "id" || n.ends_with("_id") {
                write!(s, "{}", i * u64::from(records) + r + 1)
            } else if n.contains("email") {
                write!(s, "user{}@example.com", h % 100_000)
            } else if n.contains("amount") || n.contains("price") || n.contains("total") {
                write!(s, "{}.{:02}", 1 + h % 2_000, (h >> 16) % 100)
            } else if n.contains("date") || n.ends_with("_at") {
                write!(s, "2026-{:02}-{:02}", 1 + h % 12, 1 + (h >> 8) % 28)
            } else if n.contains("qty") || n.contains("quantity") || n.contains("count") {
                write!(s, "{}", 1 + h % 20)
            } else if n.contains("sku") {
                write!(s, "SKU-{:05}", h % 100_000)
            } else {
                write!(s, "{}", WORDS[(h % WORDS.len() as u64) as usize])
            };
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_replace_the_index() {
        let t = BodyTemplate::from_spec(Some(&BodySpec::Json(
            serde_json::json!({"customer": "c-{{i}}", "items": [1, 2]}),
        )))
        .unwrap();
        let b = t.render(42);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["customer"], "c-42");
        let s = BodyTemplate::from_spec(Some(&BodySpec::Text("fixed".into()))).unwrap();
        assert!(matches!(s, BodyTemplate::Static(_)));
        assert_eq!(&s.render(1)[..], b"fixed");
        let e = BodyTemplate::from_spec(Some(&BodySpec::File("a.json".into()))).unwrap_err();
        assert!(e.to_string().contains("scenario.request.body.file"), "{e}");
    }

    #[test]
    fn csv_is_deterministic_and_has_the_records() {
        let header: Vec<String> = [
            "order_id",
            "email",
            "sku",
            "quantity",
            "unit_price",
            "created_at",
            "note",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let a = csv_body(7, 200, &header);
        assert_eq!(a, csv_body(7, 200, &header));
        assert_ne!(a, csv_body(8, 200, &header));
        let mut rd = csv::Reader::from_reader(a.as_bytes());
        let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 200);
        assert!(rows.iter().all(|r| r.len() == header.len()));
        assert_eq!(&rows[0][0], "1401");
    }
}
