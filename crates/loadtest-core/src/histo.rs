//! Latency histograms: microseconds, 1 µs to 2 minutes at 3 significant figures (0.1 %
//! relative error at every magnitude, so 999 ms and 1,001 ms stay apart: no rounding to the
//! second as goose does near 1 s). Encoded as HdrHistogram V2 + DEFLATE, base64: the format
//! every HdrHistogram implementation reads, and a few kB for a shard's response.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// Lowest discernible value: 1 µs.
pub const LOWEST_US: u64 = 1;
/// Highest trackable value: 120 s (the issue asks for at least 60 s). Larger values saturate
/// at this bound (`saturating_record`) rather than being lost.
pub const HIGHEST_US: u64 = 120_000_000;
pub const SIGFIGS: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum HistoError {
    #[error("histogram is not valid base64: {0}")]
    Base64(String),
    #[error("histogram does not decode as HdrHistogram V2: {0}")]
    Decode(String),
    #[error("histogram could not be encoded: {0}")]
    Encode(String),
}

/// A new, empty latency histogram with the suite's bounds.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that satisfy the library's preconditions.
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIGS)
        .unwrap_or_else(|_| Histogram::new(SIGFIGS).unwrap_or_else(|_| unreachable_histogram()))
}

#[cold]
fn unreachable_histogram() -> Histogram<u64> {
    // sigfigs 3 is always valid; this path exists only to avoid an expect on a constant.
    Histogram::new(2).unwrap_or_else(|_| std::process::abort())
}

/// HdrHistogram V2 + DEFLATE, base64-encoded.
pub fn encode_histogram(h: &Histogram<u64>) -> Result<String, HistoError> {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .map_err(|e| HistoError::Encode(format!("{e:?}")))?;
    Ok(STANDARD.encode(buf))
}

/// The inverse of [`encode_histogram`]; an empty string decodes to an empty histogram.
pub fn decode_histogram(s: &str) -> Result<Histogram<u64>, HistoError> {
    if s.is_empty() {
        return Ok(new_histogram());
    }
    let bytes = STANDARD
        .decode(s.trim())
        .map_err(|e| HistoError::Base64(e.to_string()))?;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(bytes))
        .map_err(|e| HistoError::Decode(format!("{e:?}")))?;
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_counts_and_percentiles() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.saturating_record(v * 100);
        }
        h.saturating_record(500_000_000); // beyond the bound: saturates, is not lost
        let s = encode_histogram(&h).unwrap();
        let back = decode_histogram(&s).unwrap();
        assert_eq!(back.len(), 10_001);
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
        assert!(back.max() >= HIGHEST_US - HIGHEST_US / 1000);
        assert!(s.len() < 20_000, "encoded size {}", s.len());
    }

    #[test]
    fn near_one_second_is_not_rounded() {
        let mut h = new_histogram();
        h.saturating_record(999_000);
        h.saturating_record(1_001_000);
        let lo = h.value_at_quantile(0.0);
        let hi = h.max();
        assert!(lo < 1_000_000 && hi > 1_000_000, "{lo} {hi}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_histogram("%%%").is_err());
        assert!(decode_histogram("AAAA").is_err());
        assert_eq!(decode_histogram("").unwrap().len(), 0);
    }
}
