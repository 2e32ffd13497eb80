//! Outside event shapes the functions accept, parsed defensively: a malformed event is an
//! `InvalidInput` error naming the field, never a panic.

use serde_json::Value;

use crate::error::SuiteError;

/// S3 notification keys are form-URL-encoded: `+` is a space and `%2B` a plus.
/// (`aws_lambda_events`' `url_decoded_key` is never filled by AWS, so we decode ourselves.)
pub fn decode_s3_event_key(raw: &str) -> String {
    form_urlencoded::parse(format!("k={}", raw.replace('&', "%26").replace('=', "%3D")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// One object named by an S3 event, key decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3ObjectRef {
    pub bucket: String,
    pub key: String,
    pub event_name: String,
    /// Orders events for the same key (hex string; compare length first, then lexically).
    pub sequencer: Option<String>,
    pub size: Option<u64>,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// Whether the payload looks like an S3 notification (`Records[].s3`) or an EventBridge S3
/// event (`source: aws.s3`).
pub fn is_s3_event(v: &Value) -> bool {
    v.get("Records").is_some()
        || str_at(v, &["source"]) == Some("aws.s3")
        // An S3 test event or an EventBridge S3 event with a damaged field is still one: it
        // gets an error naming that field, not a manual-payload error.
        || v.get("Event").is_some()
        || str_at(v, &["Service"]) == Some("Amazon S3")
        || v.pointer("/detail/bucket").is_some()
}

/// Parses an S3 notification or an EventBridge "Object Created" event into object references.
/// `s3:TestEvent` (sent when a notification is configured) yields no objects.
pub fn parse_s3_event(v: &Value) -> Result<Vec<S3ObjectRef>, SuiteError> {
    if v.get("Records").is_none()
        && (v.get("Event").is_some() || str_at(v, &["Service"]) == Some("Amazon S3"))
    {
        let e = v.get("Event").unwrap_or(&Value::Null);
        if e.as_str() == Some("s3:TestEvent") {
            return Ok(vec![]);
        }
        return Err(SuiteError::invalid(
            "Event",
            format!("{e} is not \"s3:TestEvent\""),
            "send an S3 notification (`Records`) or S3's test event",
        ));
    }
    if v.get("Records").is_none() && v.pointer("/detail/bucket").is_some() {
        if let Some(src) = str_at(v, &["source"]).filter(|s| *s != "aws.s3") {
            return Err(SuiteError::invalid(
                "source",
                format!("{src:?} is not aws.s3"),
                "send an EventBridge S3 event (source aws.s3)",
            ));
        }
        if str_at(v, &["source"]).is_none() {
            return Err(SuiteError::invalid(
                "source",
                "missing or not a string",
                "send an EventBridge S3 event (source aws.s3)",
            ));
        }
    }
    if str_at(v, &["source"]) == Some("aws.s3") {
        // EventBridge: keys arrive raw, not URL-encoded.
        let bucket = str_at(v, &["detail", "bucket", "name"]).ok_or_else(|| {
            SuiteError::invalid(
                "detail.bucket.name",
                "missing",
                "send an EventBridge S3 event",
            )
        })?;
        let key = str_at(v, &["detail", "object", "key"]).ok_or_else(|| {
            SuiteError::invalid(
                "detail.object.key",
                "missing",
                "send an EventBridge S3 event",
            )
        })?;
        return Ok(vec![S3ObjectRef {
            bucket: bucket.to_string(),
            key: key.to_string(),
            event_name: str_at(v, &["detail-type"]).unwrap_or("").to_string(),
            sequencer: str_at(v, &["detail", "object", "sequencer"]).map(str::to_string),
            size: v.pointer("/detail/object/size").and_then(Value::as_u64),
        }]);
    }
    let records = v.get("Records").and_then(Value::as_array).ok_or_else(|| {
        SuiteError::invalid(
            "Records",
            "missing or not an array",
            "send an S3 event notification",
        )
    })?;
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let field = |f: &str| format!("Records[{i}].{f}");
        let bucket = str_at(r, &["s3", "bucket", "name"]).ok_or_else(|| {
            SuiteError::invalid(
                field("s3.bucket.name"),
                "missing",
                "each record needs s3.bucket.name",
            )
        })?;
        let raw_key = str_at(r, &["s3", "object", "key"]).ok_or_else(|| {
            SuiteError::invalid(
                field("s3.object.key"),
                "missing",
                "each record needs s3.object.key",
            )
        })?;
        out.push(S3ObjectRef {
            bucket: bucket.to_string(),
            key: decode_s3_event_key(raw_key),
            event_name: str_at(r, &["eventName"]).unwrap_or("").to_string(),
            sequencer: str_at(r, &["s3", "object", "sequencer"]).map(str::to_string),
            size: r.pointer("/s3/object/size").and_then(Value::as_u64),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_form_decoded() {
        assert_eq!(decode_s3_event_key("a+b%2Bc"), "a b+c");
        assert_eq!(decode_s3_event_key("caf%C3%A9%2Fx.csv"), "café/x.csv");
        assert_eq!(decode_s3_event_key("x&y=z"), "x&y=z");
        assert_eq!(decode_s3_event_key("%ZZ"), "%ZZ");
    }

    #[test]
    fn notification_and_eventbridge() {
        let n = json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": "inv/x+y/manifest.checksum", "size": 33, "sequencer": "0A1"}}}]});
        let r = parse_s3_event(&n).unwrap();
        assert_eq!(r[0].key, "inv/x y/manifest.checksum");
        assert_eq!(r[0].size, Some(33));
        let eb = json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {"name": "b"}, "object": {"key": "a+b"}}});
        assert_eq!(parse_s3_event(&eb).unwrap()[0].key, "a+b");
        assert!(parse_s3_event(&json!({"Event": "s3:TestEvent"}))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn malformed_names_the_field() {
        let e = parse_s3_event(&json!({"Records": [{"s3": {"bucket": {}}}]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Records[0].s3.bucket.name"), "{e}");
        let e = parse_s3_event(&json!({"Records": 5}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Records"), "{e}");
    }
}
