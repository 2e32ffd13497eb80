//! S3 event `sequencer` values: hexadecimal strings that order the events of one key. They
//! can differ in length; AWS's rule is to left-pad the shorter with zeros and compare
//! lexicographically. Pure.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::error::SequencerError;

/// A validated sequencer (upper-case hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sequencer(String);

impl Sequencer {
    pub fn parse(raw: &str) -> Result<Self, SequencerError> {
        let s = raw.trim();
        if s.is_empty() || s.len() > 128 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(SequencerError(raw.to_string()));
        }
        Ok(Sequencer(s.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Sequencer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Ord for Sequencer {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.0.len().max(other.0.len());
        let a = format!("{:0>n$}", self.0);
        let b = format!("{:0>n$}", other.0);
        a.cmp(&b)
    }
}

impl PartialOrd for Sequencer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// How an event relates to the last one applied for its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Freshness {
    /// Newer than anything applied (or nothing applied yet): process it.
    New,
    /// The same sequencer as the last applied: a repeated delivery.
    Duplicate,
    /// Older than the last applied: it arrived out of order, and the newer event already
    /// re-read the object's current tags.
    Stale,
}

pub fn freshness(event: &Sequencer, last_applied: Option<&Sequencer>) -> Freshness {
    match last_applied.map(|l| event.cmp(l)) {
        None | Some(Ordering::Greater) => Freshness::New,
        Some(Ordering::Equal) => Freshness::Duplicate,
        Some(Ordering::Less) => Freshness::Stale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Sequencer {
        Sequencer::parse(x).unwrap()
    }

    #[test]
    fn compares_after_left_padding() {
        assert!(s("0100") > s("FF"));
        assert!(s("FF") > s("0FE"));
        assert_eq!(s("00ff").cmp(&s("FF")), Ordering::Equal);
        assert!(s("0055B9D6F7F5D9A4E1") > s("0055B9D6F7F5D9A4E0"));
        // Lexicographic without padding would get this wrong ("9" > "10").
        assert!(s("10") > s("9"));
    }

    #[test]
    fn rejects_non_hex() {
        assert!(Sequencer::parse("").is_err());
        assert!(Sequencer::parse("0x12").is_err());
        assert!(Sequencer::parse("12G").is_err());
        assert_eq!(s(" abc ").as_str(), "ABC");
    }

    #[test]
    fn freshness_against_the_last_applied() {
        assert_eq!(freshness(&s("0A"), None), Freshness::New);
        assert_eq!(freshness(&s("0B"), Some(&s("0A"))), Freshness::New);
        assert_eq!(freshness(&s("0A"), Some(&s("a"))), Freshness::Duplicate);
        assert_eq!(freshness(&s("09"), Some(&s("0A"))), Freshness::Stale);
        assert_eq!(freshness(&s("FF"), Some(&s("100"))), Freshness::Stale);
    }
}
