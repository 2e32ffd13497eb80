//! Prometheus remote write 1.0: a protobuf `WriteRequest` (hand-written prost structs, no
//! protoc), compressed with snappy's BLOCK format (not the framed stream format), POSTed with
//! the headers the spec requires. Labels are sorted by name, timestamps are milliseconds.

use prost::Message;

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

pub const CONTENT_TYPE: &str = "application/x-protobuf";
pub const CONTENT_ENCODING: &str = "snappy";
pub const VERSION: &str = "0.1.0";
pub const USER_AGENT: &str = concat!("loadtest-coordinator/", env!("CARGO_PKG_VERSION"));

/// One series: a name, its labels and one sample. Non-finite values are left out (Prometheus
/// would store them, but they mean "no data" here).
pub fn series(name: &str, labels: &[(&str, &str)], value: f64, ts_ms: i64) -> Option<TimeSeries> {
    if !value.is_finite() {
        return None;
    }
    let mut l: Vec<Label> = labels
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| Label {
            name: k.to_string(),
            value: v.to_string(),
        })
        .chain(std::iter::once(Label {
            name: "__name__".into(),
            value: name.into(),
        }))
        .collect();
    l.sort_by(|a, b| a.name.cmp(&b.name));
    l.dedup_by(|a, b| a.name == b.name);
    Some(TimeSeries {
        labels: l,
        samples: vec![Sample {
            value,
            timestamp: ts_ms,
        }],
    })
}

/// protobuf, then snappy block format.
pub fn encode(req: &WriteRequest) -> Result<Vec<u8>, String> {
    let pb = req.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&pb)
        .map_err(|e| format!("snappy: {e}"))
}

/// The inverse of [`encode`] (tests, and a sanity check of what is sent).
pub fn decode(body: &[u8]) -> Result<WriteRequest, String> {
    let pb = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))?;
    WriteRequest::decode(pb.as_slice()).map_err(|e| format!("protobuf: {e}"))
}

/// POSTs the body. Errors carry the receiver's status and message.
pub async fn push(client: &reqwest::Client, url: &str, body: Vec<u8>) -> Result<(), String> {
    let resp = client
        .post(url)
        .header("Content-Encoding", CONTENT_ENCODING)
        .header("Content-Type", CONTENT_TYPE)
        .header("X-Prometheus-Remote-Write-Version", VERSION)
        .header("User-Agent", USER_AGENT)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        let text = resp.text().await.unwrap_or_default();
        Err(format!("POST {url}: HTTP {status}: {}", text.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_sorted_labels() {
        let s = series(
            "k6_http_req_duration_p95",
            &[
                ("scenario", "quote-generation"),
                ("environment", "prod"),
                ("empty", ""),
            ],
            0.412,
            1_700_000_000_123,
        )
        .unwrap();
        let names: Vec<&str> = s.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "environment", "scenario"]);
        assert!(series("x", &[], f64::NAN, 0).is_none());
        let req = WriteRequest {
            timeseries: vec![s.clone()],
        };
        let body = encode(&req).unwrap();
        // Snappy block format: starts with the uncompressed length as a varint, no stream
        // identifier chunk (0xff 0x06 0x00 0x00 "sNaPpY").
        assert_ne!(body[0], 0xff);
        let pb_len = req.encode_to_vec().len();
        assert_eq!(snap::raw::decompress_len(&body).unwrap(), pb_len);
        let back = decode(&body).unwrap();
        assert_eq!(back, req);
        assert_eq!(back.timeseries[0].samples[0].timestamp, 1_700_000_000_123);
        assert!(decode(b"garbage").is_err());
    }

    #[test]
    fn wire_bytes_match_the_protobuf_schema() {
        // Label{name="a", value="b"} inside TimeSeries field 1, Sample{1.0, 2} in field 2.
        let ts = TimeSeries {
            labels: vec![Label {
                name: "a".into(),
                value: "b".into(),
            }],
            samples: vec![Sample {
                value: 1.0,
                timestamp: 2,
            }],
        };
        let bytes = WriteRequest {
            timeseries: vec![ts],
        }
        .encode_to_vec();
        let expect: Vec<u8> = vec![
            0x0a, 0x15, // WriteRequest.timeseries (1, LEN) 21 bytes
            0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b', // labels
            0x12, 0x0b, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x02, // samples
        ];
        assert_eq!(bytes, expect);
    }
}
