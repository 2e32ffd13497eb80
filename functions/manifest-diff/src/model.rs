//! The comparison's vocabulary: one object version as seen on one side, and the class a key
//! falls into once both sides are seen.

use serde::{Deserialize, Serialize};

/// One key's current state on one side. Keys are decoded (never URL-encoded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub size: u64,
    /// Without quotes; `None` when the source gives none (delete markers).
    pub etag: Option<String>,
    /// Seconds since the epoch.
    pub last_modified: Option<i64>,
    /// The current version is a delete marker (inventory with versions only).
    pub delete_marker: bool,
}

impl Entry {
    pub fn live(key: &str, size: u64, etag: &str, last_modified: i64) -> Self {
        Entry {
            key: key.to_string(),
            size,
            etag: Some(normalize_etag(etag)),
            last_modified: Some(last_modified),
            delete_marker: false,
        }
    }

    pub fn deleted(key: &str, last_modified: i64) -> Self {
        Entry {
            key: key.to_string(),
            size: 0,
            etag: None,
            last_modified: Some(last_modified),
            delete_marker: true,
        }
    }

    /// Rough heap footprint, for the external sort's memory budget.
    pub fn footprint(&self) -> usize {
        // Plus about 16 bytes of allocator overhead for each of the two heap strings.
        std::mem::size_of::<Entry>()
            + self.key.len()
            + self.etag.as_ref().map_or(0, |e| e.len())
            + 32
    }
}

/// ETags come quoted from ListObjectsV2 and unquoted from S3 Inventory.
pub fn normalize_etag(raw: &str) -> String {
    raw.trim().trim_matches('"').to_ascii_lowercase()
}

/// A multipart ETag (`<md5-of-md5s>-<parts>`) depends on the part size, so two replicas of the
/// same bytes can disagree: such ETags are never compared.
pub fn is_multipart_etag(etag: &str) -> bool {
    etag.contains('-')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Same size and (where comparable) same ETag.
    Match,
    /// Same size; ETags not comparable (multipart on at least one side). Counted as a match.
    MatchSizeOnly,
    /// The current version is a delete marker on both sides, or deleted on the primary and
    /// absent on the replica.
    DeletedBoth,
    /// On the primary, not on the replica, older than the lag allowance.
    Missing,
    /// On the replica, not on the primary (or deleted on the primary beyond the allowance).
    Extra,
    /// Present on both with a different size.
    MismatchedSize,
    /// Present on both, same size, different single-part ETags.
    MismatchedEtag,
    /// Differs, but the primary changed within the lag allowance: replication may catch up.
    Pending,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Match => "match",
            Class::MatchSizeOnly => "match_size_only",
            Class::DeletedBoth => "deleted_both",
            Class::Missing => "missing",
            Class::Extra => "extra",
            Class::MismatchedSize => "mismatched_size",
            Class::MismatchedEtag => "mismatched_etag",
            Class::Pending => "pending",
        }
    }

    /// Counts toward the drift ratio's numerator.
    pub fn is_drift(self) -> bool {
        matches!(
            self,
            Class::Missing | Class::Extra | Class::MismatchedSize | Class::MismatchedEtag
        )
    }

    /// Listed in the drift CSV.
    pub fn is_listed(self) -> bool {
        self.is_drift() || self == Class::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags() {
        assert_eq!(normalize_etag("\"ABCdef\""), "abcdef");
        assert!(is_multipart_etag("d41d8cd98f00b204e9800998ecf8427e-12"));
        assert!(!is_multipart_etag("d41d8cd98f00b204e9800998ecf8427e"));
    }
}
