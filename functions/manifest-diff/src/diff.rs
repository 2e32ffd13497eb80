//! The pure comparison: classify a key from what each side holds, merge-join two key-sorted
//! streams in constant memory, and tally classes per prefix into a drift verdict.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::model::{is_multipart_etag, Class, Entry};

/// What "recent" means: changes on the primary newer than `now - lag_secs` may not have been
/// replicated yet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub now: i64,
    pub lag_secs: i64,
}

impl Policy {
    fn recent(&self, e: &Entry) -> bool {
        e.last_modified
            .is_some_and(|t| t > self.now - self.lag_secs)
    }
}

/// Classifies one key. `None` means the side has no current version of the key.
pub fn classify(primary: Option<&Entry>, replica: Option<&Entry>, policy: &Policy) -> Class {
    fn live(e: Option<&Entry>) -> Option<&Entry> {
        e.filter(|e| !e.delete_marker)
    }
    match (live(primary), live(replica)) {
        (None, None) => Class::DeletedBoth,
        (Some(p), None) => {
            if policy.recent(p) {
                Class::Pending
            } else {
                Class::Missing
            }
        }
        (None, Some(_)) => {
            // A delete on the primary that the replica has not seen yet is pending.
            match primary {
                Some(p) if policy.recent(p) => Class::Pending,
                _ => Class::Extra,
            }
        }
        (Some(p), Some(r)) => {
            let verdict = if p.size != r.size {
                Class::MismatchedSize
            } else {
                match (p.etag.as_deref(), r.etag.as_deref()) {
                    (Some(a), Some(b)) if !is_multipart_etag(a) && !is_multipart_etag(b) => {
                        if a == b {
                            Class::Match
                        } else {
                            Class::MismatchedEtag
                        }
                    }
                    _ => Class::MatchSizeOnly,
                }
            };
            if verdict.is_drift() && policy.recent(p) {
                Class::Pending
            } else {
                verdict
            }
        }
    }
}

/// What the merge wants next, or the next joined key.
#[derive(Debug, PartialEq)]
pub enum Step {
    NeedPrimary,
    NeedReplica,
    Pair(Option<Entry>, Option<Entry>),
    Done,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{side} keys are not in ascending byte order: {previous:?} then {next:?}")]
pub struct OrderError {
    pub side: &'static str,
    pub previous: String,
    pub next: String,
}

/// A full outer merge-join over two key-sorted streams fed in pages. Memory is bounded by the
/// pages in flight, whatever the size of the buckets. Keys compare as bytes, which is the order
/// of ListObjectsV2 and of the external sort.
#[derive(Debug, Default)]
pub struct MergeJoin {
    primary: VecDeque<Entry>,
    replica: VecDeque<Entry>,
    primary_done: bool,
    replica_done: bool,
    last_primary: Option<String>,
    last_replica: Option<String>,
}

impl MergeJoin {
    pub fn new() -> Self {
        Self::default()
    }

    fn check(
        last: &mut Option<String>,
        page: &[Entry],
        side: &'static str,
    ) -> Result<(), OrderError> {
        for e in page {
            if let Some(prev) = last.as_deref() {
                if e.key.as_bytes() <= prev.as_bytes() {
                    return Err(OrderError {
                        side,
                        previous: prev.to_string(),
                        next: e.key.clone(),
                    });
                }
            }
            *last = Some(e.key.clone());
        }
        Ok(())
    }

    /// Feeds a page of the primary; `last` marks the end of its stream.
    pub fn feed_primary(&mut self, page: Vec<Entry>, last: bool) -> Result<(), OrderError> {
        Self::check(&mut self.last_primary, &page, "primary")?;
        self.primary.extend(page);
        self.primary_done |= last;
        Ok(())
    }

    pub fn feed_replica(&mut self, page: Vec<Entry>, last: bool) -> Result<(), OrderError> {
        Self::check(&mut self.last_replica, &page, "replica")?;
        self.replica.extend(page);
        self.replica_done |= last;
        Ok(())
    }

    pub fn step(&mut self) -> Step {
        if self.primary.is_empty() && !self.primary_done {
            return Step::NeedPrimary;
        }
        if self.replica.is_empty() && !self.replica_done {
            return Step::NeedReplica;
        }
        match (self.primary.front(), self.replica.front()) {
            (None, None) => Step::Done,
            (Some(_), None) => Step::Pair(self.primary.pop_front(), None),
            (None, Some(_)) => Step::Pair(None, self.replica.pop_front()),
            (Some(p), Some(r)) => match p.key.as_bytes().cmp(r.key.as_bytes()) {
                std::cmp::Ordering::Less => Step::Pair(self.primary.pop_front(), None),
                std::cmp::Ordering::Greater => Step::Pair(None, self.replica.pop_front()),
                std::cmp::Ordering::Equal => {
                    Step::Pair(self.primary.pop_front(), self.replica.pop_front())
                }
            },
        }
    }
}

/// Counts for one prefix (or the total).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Live current objects on the primary: the ratio's denominator.
    pub eligible_primary: u64,
    pub replica_objects: u64,
    pub matched: u64,
    pub matched_size_only: u64,
    pub deleted_both: u64,
    pub missing: u64,
    pub extra: u64,
    pub mismatched_size: u64,
    pub mismatched_etag: u64,
    pub pending: u64,
    pub primary_bytes: u64,
    pub replica_bytes: u64,
}

impl Counts {
    pub fn add(&mut self, class: Class, primary: Option<&Entry>, replica: Option<&Entry>) {
        if let Some(p) = primary.filter(|p| !p.delete_marker) {
            self.eligible_primary += 1;
            self.primary_bytes += p.size;
        }
        if let Some(r) = replica.filter(|r| !r.delete_marker) {
            self.replica_objects += 1;
            self.replica_bytes += r.size;
        }
        match class {
            Class::Match => self.matched += 1,
            Class::MatchSizeOnly => self.matched_size_only += 1,
            Class::DeletedBoth => self.deleted_both += 1,
            Class::Missing => self.missing += 1,
            Class::Extra => self.extra += 1,
            Class::MismatchedSize => self.mismatched_size += 1,
            Class::MismatchedEtag => self.mismatched_etag += 1,
            Class::Pending => self.pending += 1,
        }
    }

    pub fn merge(&mut self, o: &Counts) {
        self.eligible_primary += o.eligible_primary;
        self.replica_objects += o.replica_objects;
        self.matched += o.matched;
        self.matched_size_only += o.matched_size_only;
        self.deleted_both += o.deleted_both;
        self.missing += o.missing;
        self.extra += o.extra;
        self.mismatched_size += o.mismatched_size;
        self.mismatched_etag += o.mismatched_etag;
        self.pending += o.pending;
        self.primary_bytes += o.primary_bytes;
        self.replica_bytes += o.replica_bytes;
    }

    pub fn mismatched(&self) -> u64 {
        self.mismatched_size + self.mismatched_etag
    }

    pub fn drifting(&self) -> u64 {
        self.missing + self.extra + self.mismatched()
    }

    /// (missing + mismatched + extra) ÷ eligible primary objects; `None` when the primary has
    /// no eligible object (the ratio is undefined, never a silent zero).
    pub fn ratio(&self) -> Option<f64> {
        (self.eligible_primary > 0).then(|| self.drifting() as f64 / self.eligible_primary as f64)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Ok,
    Drift,
    /// Nothing on either side: a wrong prefix or an empty bucket, reported, not hidden.
    Empty,
}

/// The verdict for a set of counts at a threshold given as a fraction (0.001 = 0.1 %).
pub fn verdict(c: &Counts, threshold: f64) -> Status {
    match c.ratio() {
        Some(r) if r > threshold => Status::Drift,
        Some(_) => Status::Ok,
        None if c.drifting() > 0 => Status::Drift,
        None => Status::Empty,
    }
}

/// Counts per prefix, in the order the prefixes were given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub by_prefix: BTreeMap<String, Counts>,
}

impl Tally {
    pub fn add(&mut self, prefix: &str, class: Class, p: Option<&Entry>, r: Option<&Entry>) {
        // Called once per key: look up before allocating the prefix's name.
        if let Some(c) = self.by_prefix.get_mut(prefix) {
            c.add(class, p, r);
            return;
        }
        self.by_prefix
            .entry(prefix.to_string())
            .or_default()
            .add(class, p, r);
    }

    pub fn ensure(&mut self, prefix: &str) {
        self.by_prefix.entry(prefix.to_string()).or_default();
    }

    pub fn total(&self) -> Counts {
        let mut t = Counts::default();
        for c in self.by_prefix.values() {
            t.merge(c);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    fn policy() -> Policy {
        Policy {
            now: NOW,
            lag_secs: DAY,
        }
    }

    fn old(key: &str, size: u64, etag: &str) -> Entry {
        Entry::live(key, size, etag, NOW - 3 * DAY)
    }

    #[test]
    fn classification_table() {
        let p = policy();
        let a = old("k", 10, "\"aaaa\"");
        assert_eq!(
            classify(Some(&a), Some(&old("k", 10, "AAAA")), &p),
            Class::Match
        );
        assert_eq!(
            classify(Some(&a), Some(&old("k", 11, "aaaa")), &p),
            Class::MismatchedSize
        );
        assert_eq!(
            classify(Some(&a), Some(&old("k", 10, "bbbb")), &p),
            Class::MismatchedEtag
        );
        // Multipart ETags differ for equal bytes uploaded with another part size.
        let mp1 = old("k", 10, "\"0123-2\"");
        let mp2 = old("k", 10, "\"4567-3\"");
        assert_eq!(classify(Some(&mp1), Some(&mp2), &p), Class::MatchSizeOnly);
        assert_eq!(classify(Some(&mp1), Some(&a), &p), Class::MatchSizeOnly);
        assert_eq!(classify(Some(&a), None, &p), Class::Missing);
        assert_eq!(classify(None, Some(&a), &p), Class::Extra);
        // Inside the lag window: pending, not drift.
        let fresh = Entry::live("k", 10, "cccc", NOW - 3600);
        assert_eq!(classify(Some(&fresh), None, &p), Class::Pending);
        assert_eq!(classify(Some(&fresh), Some(&a), &p), Class::Pending);
        // A fresh primary that equals the replica is simply a match.
        assert_eq!(
            classify(
                Some(&fresh),
                Some(&Entry::live("k", 10, "cccc", NOW - 99)),
                &p
            ),
            Class::Match
        );
        // Delete markers.
        let dm_old = Entry::deleted("k", NOW - 3 * DAY);
        let dm_new = Entry::deleted("k", NOW - 60);
        assert_eq!(
            classify(Some(&dm_old), Some(&dm_old), &p),
            Class::DeletedBoth
        );
        assert_eq!(classify(Some(&dm_old), None, &p), Class::DeletedBoth);
        assert_eq!(classify(Some(&dm_old), Some(&a), &p), Class::Extra);
        assert_eq!(classify(Some(&dm_new), Some(&a), &p), Class::Pending);
        assert_eq!(classify(Some(&a), Some(&dm_old), &p), Class::Missing);
    }

    fn run(
        primary: Vec<Entry>,
        replica: Vec<Entry>,
        page: usize,
    ) -> Vec<(Option<String>, Option<String>)> {
        let mut mj = MergeJoin::new();
        let mut p = primary
            .chunks(page)
            .map(|c| c.to_vec())
            .collect::<VecDeque<_>>();
        let mut r = replica
            .chunks(page)
            .map(|c| c.to_vec())
            .collect::<VecDeque<_>>();
        let mut out = vec![];
        loop {
            match mj.step() {
                Step::NeedPrimary => {
                    let c = p.pop_front().unwrap_or_default();
                    mj.feed_primary(c, p.is_empty()).unwrap();
                }
                Step::NeedReplica => {
                    let c = r.pop_front().unwrap_or_default();
                    mj.feed_replica(c, r.is_empty()).unwrap();
                }
                Step::Pair(a, b) => out.push((a.map(|e| e.key), b.map(|e| e.key))),
                Step::Done => return out,
            }
        }
    }

    #[test]
    fn merge_join_is_a_full_outer_join_in_byte_order() {
        let keys_p = ["a", "b", "d", "z", "é"];
        let keys_r = ["b", "c", "d", "zz"];
        let mk = |ks: &[&str]| ks.iter().map(|k| old(k, 1, "e")).collect::<Vec<_>>();
        for page in [1, 2, 10] {
            let out = run(mk(&keys_p), mk(&keys_r), page);
            let s = |x: &str| Some(x.to_string());
            assert_eq!(
                out,
                vec![
                    (s("a"), None),
                    (s("b"), s("b")),
                    (None, s("c")),
                    (s("d"), s("d")),
                    (s("z"), None),
                    (None, s("zz")),
                    (s("é"), None),
                ],
                "page size {page}"
            );
        }
        assert!(run(vec![], vec![], 3).is_empty());
    }

    #[test]
    fn out_of_order_input_is_refused() {
        let mut mj = MergeJoin::new();
        let e = mj
            .feed_primary(vec![old("b", 1, "e"), old("a", 1, "e")], true)
            .unwrap_err();
        assert_eq!(e.side, "primary");
        assert!(e.to_string().contains("\"b\" then \"a\""));
    }

    #[test]
    fn ratio_and_verdict() {
        let mut c = Counts::default();
        assert_eq!(c.ratio(), None);
        assert_eq!(verdict(&c, 0.001), Status::Empty);
        for i in 0..1000 {
            let e = old(&format!("k{i}"), 1, "e");
            c.add(Class::Match, Some(&e), Some(&e));
        }
        assert_eq!(verdict(&c, 0.001), Status::Ok);
        let e = old("x", 1, "e");
        c.add(Class::Missing, Some(&e), None);
        // 1 / 1001 < 0.1 %: still OK; a second drifting key crosses the threshold.
        assert_eq!(verdict(&c, 0.001), Status::Ok);
        c.add(Class::Extra, None, Some(&e));
        assert_eq!(c.drifting(), 2);
        assert!((c.ratio().unwrap() - 2.0 / 1001.0).abs() < 1e-12);
        assert_eq!(verdict(&c, 0.001), Status::Drift);
        // Only extras on an empty primary: drift, not empty.
        let mut only_extra = Counts::default();
        only_extra.add(Class::Extra, None, Some(&e));
        assert_eq!(verdict(&only_extra, 0.001), Status::Drift);
    }
}
