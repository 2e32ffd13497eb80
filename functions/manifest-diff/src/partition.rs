//! The inventory join at scale: a partitioned hash join with bounded memory.
//!
//! Phase 1 reads each side's files (gunzip, MD5 check, CSV) and appends every current-version
//! row under the prefixes, as a compact binary record, to one of `P` partition files chosen by
//! a hash of the key: no per-row allocation, no sort. Phase 2 takes the partitions one pair at
//! a time (primary `i`, replica `i`) on two worker threads: the primary partition is indexed
//! in a hash table, the replica partition probed against it, and the pairs handed to the
//! caller's thread in primary-file order, then the replica-only rows. Memory is one partition
//! pair per worker (sized from the budget) plus the file buffers, whatever the object count.
//!
//! Why not the external sort (`extsort`) any more: sorting 10 million keys per side costs
//! n·log n string comparisons and a k-way merge; hashing costs one pass. The join needs
//! equality, not order. The drift CSV therefore lists keys grouped by partition (stable for
//! the same inventories), not in byte order; `extsort` stays for the tests that want order.
//!
//! Record format (hand-written: it is read back only here, and a serializer would dominate
//! the cost): `u16 key_len, key, u64 size, i64 last_modified (i64::MIN = none), u8 flags
//! (1 = delete marker, 2 = has ETag, 4 = ETag stored as 16 MD5 bytes), ETag (16 bytes, or u8
//! len + bytes)`.

use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rustc_hash::FxHasher;
use shared::{SuiteError, SuiteResult};

use crate::inventory::Manifest;
use crate::inventory::RowView;
use crate::inventory_load::{open_row_views, LocalFile};
use crate::model::Entry;

const NONE: u32 = u32::MAX;
const FLAG_DM: u8 = 1;
const FLAG_ETAG: u8 = 2;
const FLAG_MD5: u8 = 4;

/// One side, partitioned on disk.
#[derive(Debug)]
pub struct PartitionedSide {
    pub files: Vec<PathBuf>,
    pub rows: u64,
    pub bytes: u64,
}

/// How many partitions for this much compressed input and this memory budget (the whole
/// join's). A side's records take about twice its compressed bytes; a joined pair (two
/// arenas, their indexes, the hash table and the pair list) about 2.8 times one side's
/// partition; and at most three pairs are alive at once (one per worker being built, one
/// being handed out). So a partition gets a twelfth of the budget.
pub fn partitions_for(compressed_bytes_per_side: u64, budget_bytes: usize) -> usize {
    let per_partition = (budget_bytes as u64 / 12).max(1 << 20);
    let est = compressed_bytes_per_side.saturating_mul(2);
    (est.div_ceil(per_partition) as usize).clamp(1, 512)
}

fn partition_of(key: &[u8], parts: usize) -> usize {
    // A different stream from the hash table's (seeded), so a partition's keys still spread
    // over the whole table.
    let mut h = FxHasher::default();
    h.write_u64(0x9e37_79b9_7f4a_7c15);
    h.write(key);
    ((h.finish() >> 20) % parts as u64) as usize
}

/// Phase 1 for one side.
pub fn partition_side(
    manifest: &Manifest,
    files: &[LocalFile],
    prefixes: &[String],
    dir: &Path,
    parts: usize,
) -> SuiteResult<PartitionedSide> {
    std::fs::create_dir_all(dir)?;
    let paths: Vec<PathBuf> = (0..parts)
        .map(|i| dir.join(format!("part-{i:04}.bin")))
        .collect();
    let mut writers = paths
        .iter()
        .map(|p| Ok(BufWriter::with_capacity(32 << 10, File::create(p)?)))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut rows = 0u64;
    let mut bytes = 0u64;
    let mut rec = Vec::with_capacity(256);
    for file in files {
        open_row_views(manifest, file, |e| {
            if !prefixes.iter().any(|p| e.key.starts_with(p.as_str())) {
                return Ok(());
            }
            encode(&e, &mut rec);
            let w = &mut writers[partition_of(e.key.as_bytes(), parts)];
            w.write_all(&rec)?;
            rows += 1;
            bytes += rec.len() as u64;
            Ok(())
        })?;
    }
    for w in writers.iter_mut() {
        w.flush()?;
    }
    Ok(PartitionedSide {
        files: paths,
        rows,
        bytes,
    })
}

fn encode(e: &RowView<'_>, out: &mut Vec<u8>) {
    out.clear();
    let key = e.key.as_bytes();
    let klen = key.len().min(u16::MAX as usize);
    out.extend_from_slice(&(klen as u16).to_le_bytes());
    out.extend_from_slice(&key[..klen]);
    out.extend_from_slice(&e.size.to_le_bytes());
    out.extend_from_slice(&e.last_modified.unwrap_or(i64::MIN).to_le_bytes());
    let mut flags = if e.delete_marker { FLAG_DM } else { 0 };
    match e.etag {
        Some(t) => {
            flags |= FLAG_ETAG;
            let mut md5 = [0u8; 16];
            if t.len() == 32 && lower_hex_16(t.as_bytes(), &mut md5) {
                out.push(flags | FLAG_MD5);
                out.extend_from_slice(&md5);
            } else {
                out.push(flags);
                let b = t.as_bytes();
                let n = b.len().min(255);
                out.push(n as u8);
                out.extend_from_slice(&b[..n]);
            }
        }
        None => out.push(flags),
    }
}

/// Value of each lower-case hex digit; 0xff for every other byte (upper case included, so
/// that decoding gives back the same string).
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// 32 lower-case hex digits into 16 bytes. A table, not the `hex` crate: its branchy
/// per-digit decode was half of phase 1's own time at 10 million rows.
fn lower_hex_16(t: &[u8], out: &mut [u8; 16]) -> bool {
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(t.chunks_exact(2)) {
        let (h, l) = (HEX_VALUE[pair[0] as usize], HEX_VALUE[pair[1] as usize]);
        bad |= h | l;
        *o = h << 4 | (l & 15);
    }
    // Every valid digit is below 16; 0xff marks any other byte.
    bad < 16
}

/// A record's place in its partition's arena.
#[derive(Clone, Copy)]
struct Rec {
    off: u32,
    key_len: u16,
}

fn read_all(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    BufReader::new(File::open(path)?).read_to_end(&mut buf)?;
    Ok(buf)
}

fn corrupt(path: &Path) -> SuiteError {
    SuiteError::Internal(format!("partition file {} is truncated", path.display()))
}

/// Offsets of every record in an arena.
fn index(arena: &[u8], path: &Path) -> SuiteResult<Vec<Rec>> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i < arena.len() {
        let kl = u16::from_le_bytes(
            arena
                .get(i..i + 2)
                .ok_or_else(|| corrupt(path))?
                .try_into()
                .map_err(|_| corrupt(path))?,
        );
        let off = i;
        i += 2 + kl as usize + 16;
        let flags = *arena.get(i).ok_or_else(|| corrupt(path))?;
        i += 1;
        if flags & FLAG_ETAG != 0 {
            if flags & FLAG_MD5 != 0 {
                i += 16;
            } else {
                i += 1 + *arena.get(i).ok_or_else(|| corrupt(path))? as usize;
            }
        }
        if i > arena.len() || off > u32::MAX as usize {
            return Err(corrupt(path));
        }
        out.push(Rec {
            off: off as u32,
            key_len: kl,
        });
    }
    Ok(out)
}

fn key_of(arena: &[u8], r: Rec) -> &[u8] {
    let s = r.off as usize + 2;
    &arena[s..s + r.key_len as usize]
}

/// Fills `e` from a record without allocating once its strings have grown. `known_key` is
/// the same key already decoded (the other side of a pair), which saves validating it twice.
fn decode_into(arena: &[u8], r: Rec, e: &mut Entry, known_key: Option<&str>) -> SuiteResult<()> {
    let mut i = r.off as usize + 2;
    let key = match known_key {
        Some(k) => k,
        None => std::str::from_utf8(&arena[i..i + r.key_len as usize])
            .map_err(|_| SuiteError::Internal("partition key is not UTF-8".into()))?,
    };
    e.key.clear();
    e.key.push_str(key);
    i += r.key_len as usize;
    let num = |j: usize| -> [u8; 8] {
        let mut b = [0u8; 8];
        b.copy_from_slice(&arena[j..j + 8]);
        b
    };
    e.size = u64::from_le_bytes(num(i));
    let lm = i64::from_le_bytes(num(i + 8));
    e.last_modified = (lm != i64::MIN).then_some(lm);
    i += 16;
    let flags = arena[i];
    i += 1;
    e.delete_marker = flags & FLAG_DM != 0;
    if flags & FLAG_ETAG == 0 {
        e.etag = None;
        return Ok(());
    }
    let t = e.etag.get_or_insert_with(String::new);
    t.clear();
    if flags & FLAG_MD5 != 0 {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut digits = [0u8; 32];
        for (d, &b) in digits.chunks_exact_mut(2).zip(&arena[i..i + 16]) {
            d[0] = HEX[(b >> 4) as usize];
            d[1] = HEX[(b & 15) as usize];
        }
        t.push_str(std::str::from_utf8(&digits).unwrap_or_default());
    } else {
        let n = arena[i] as usize;
        t.push_str(&String::from_utf8_lossy(&arena[i + 1..i + 1 + n]));
    }
    Ok(())
}

/// One joined partition, ready for the caller's thread.
struct Joined {
    p_arena: Vec<u8>,
    r_arena: Vec<u8>,
    /// (primary record, replica record), either may be absent; primary order first.
    pairs: Vec<(Option<Rec>, Option<Rec>)>,
    duplicates: u64,
}

type FxMap<'a> = HashMap<&'a [u8], (u32, u32), BuildHasherDefault<FxHasher>>;

fn join_one(p_path: &Path, r_path: &Path) -> SuiteResult<Joined> {
    let p_arena = read_all(p_path)?;
    let r_arena = read_all(r_path)?;
    let precs = index(&p_arena, p_path)?;
    let rrecs = index(&r_arena, r_path)?;
    let mut duplicates = 0u64;
    let mut pairs = Vec::with_capacity(precs.len() + rrecs.len() / 64);
    // The replica row matched to each primary row (NONE: none; DUP: a duplicate primary
    // row), so that the output pass walks the primary rows in order without hashing again.
    const DUP: u32 = u32::MAX - 1;
    let mut partner = vec![NONE; precs.len()];
    {
        let mut map: FxMap =
            HashMap::with_capacity_and_hasher(precs.len() + rrecs.len() / 64, Default::default());
        // Of duplicate keys (a malformed inventory) the first row wins, as in `extsort`.
        for (i, &r) in precs.iter().enumerate() {
            let slot = map.entry(key_of(&p_arena, r)).or_insert((NONE, NONE));
            if slot.0 == NONE {
                slot.0 = i as u32;
            } else {
                duplicates += 1;
                partner[i] = DUP;
            }
        }
        let mut extra = Vec::new();
        for (j, &r) in rrecs.iter().enumerate() {
            let key = key_of(&r_arena, r);
            match map.get_mut(key) {
                Some(slot) if slot.1 != NONE => duplicates += 1,
                Some(slot) => {
                    slot.1 = j as u32;
                    if slot.0 == NONE {
                        extra.push(r);
                    } else {
                        partner[slot.0 as usize] = j as u32;
                    }
                }
                // Replica-only keys are rare: only they are inserted (to catch duplicates).
                None => {
                    map.insert(key, (NONE, j as u32));
                    extra.push(r);
                }
            }
        }
        for (&p, &rj) in precs.iter().zip(&partner) {
            if rj == DUP {
                continue;
            }
            pairs.push((Some(p), (rj != NONE).then(|| rrecs[rj as usize])));
        }
        pairs.extend(extra.into_iter().map(|r| (None, Some(r))));
    }
    Ok(Joined {
        p_arena,
        r_arena,
        pairs,
        duplicates,
    })
}

/// Phase 2: joins partition i of each side for every i on `workers` threads and calls `f`
/// on this thread once per key. Returns the number of duplicate rows ignored.
pub fn join_partitioned<F>(
    p: &PartitionedSide,
    r: &PartitionedSide,
    workers: usize,
    mut f: F,
) -> SuiteResult<u64>
where
    F: FnMut(Option<&Entry>, Option<&Entry>) -> SuiteResult<()>,
{
    if p.files.len() != r.files.len() {
        return Err(SuiteError::Internal(
            "the two sides have different partition counts".into(),
        ));
    }
    let n = p.files.len();
    let workers = workers.clamp(1, n.max(1));
    let mut pe = Entry::live("", 0, "", 0);
    let mut re = Entry::live("", 0, "", 0);
    let mut duplicates = 0u64;
    std::thread::scope(|scope| -> SuiteResult<()> {
        // One rendezvous channel per worker, read round-robin, so partitions arrive in order
        // and a worker holds at most the one it finished (bounded memory).
        let mut rxs = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = mpsc::sync_channel::<SuiteResult<Joined>>(0);
            rxs.push(rx);
            let (pf, rf) = (&p.files, &r.files);
            scope.spawn(move || {
                let mut i = w;
                while i < n {
                    let j = join_one(&pf[i], &rf[i]);
                    let failed = j.is_err();
                    if tx.send(j).is_err() || failed {
                        return;
                    }
                    i += workers;
                }
            });
        }
        for i in 0..n {
            let joined = rxs[i % workers]
                .recv()
                .map_err(|_| SuiteError::Internal("a join worker stopped early".into()))??;
            duplicates += joined.duplicates;
            for (pr, rr) in &joined.pairs {
                if let Some(x) = pr {
                    decode_into(&joined.p_arena, *x, &mut pe, None)?;
                }
                if let Some(x) = rr {
                    let known = pr.is_some().then_some(pe.key.as_str());
                    decode_into(&joined.r_arena, *x, &mut re, known)?;
                }
                f(pr.map(|_| &pe), rr.map(|_| &re))?;
            }
            // Each partition file is read once; free the disk as we go.
            let _ = std::fs::remove_file(&p.files[i]);
            let _ = std::fs::remove_file(&r.files[i]);
        }
        // Dropping the receivers lets any worker still blocked on send return.
        drop(rxs);
        Ok(())
    })?;
    Ok(duplicates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let cases = vec![
            Entry::live(
                "a/b c/é.txt",
                42,
                "0123456789abcdef0123456789abcdef",
                1_700_000_000,
            ),
            Entry::live("multi", 7, "0123456789abcdef0123456789abcdef-3", 1),
            Entry::live("upper", 7, "0123456789ABCDEF0123456789ABCDEF", 1),
            Entry::deleted("gone", 5),
            Entry {
                key: "noetag".into(),
                size: 0,
                etag: None,
                last_modified: None,
                delete_marker: false,
            },
        ];
        let mut arena = Vec::new();
        let mut rec = Vec::new();
        for e in &cases {
            encode(&e.view(), &mut rec);
            arena.extend_from_slice(&rec);
        }
        let recs = index(&arena, Path::new("t")).unwrap();
        assert_eq!(recs.len(), cases.len());
        let mut e = Entry::live("", 0, "", 0);
        for (r, want) in recs.iter().zip(&cases) {
            decode_into(&arena, *r, &mut e, None).unwrap();
            assert_eq!(&e, want);
        }
        // A truncated file is an error, not a panic.
        assert!(index(&arena[..arena.len() - 3], Path::new("t")).is_err());
    }

    /// Writes entries as one side's partition files, each key to its partition.
    fn side(dir: &Path, name: &str, parts: usize, entries: &[Entry]) -> PartitionedSide {
        let files: Vec<PathBuf> = (0..parts)
            .map(|i| dir.join(format!("{name}-{i}.bin")))
            .collect();
        let mut bufs = vec![Vec::new(); parts];
        let mut rec = Vec::new();
        for e in entries {
            encode(&e.view(), &mut rec);
            bufs[partition_of(e.key.as_bytes(), parts)].extend_from_slice(&rec);
        }
        for (f, b) in files.iter().zip(&bufs) {
            std::fs::write(f, b).unwrap();
        }
        PartitionedSide {
            files,
            rows: entries.len() as u64,
            bytes: bufs.iter().map(|b| b.len() as u64).sum(),
        }
    }

    #[test]
    fn join_pairs_every_key_once_and_ignores_duplicate_rows() {
        let live = |k: &str, size| Entry::live(k, size, "0123456789abcdef0123456789abcdef", 1);
        let primary = [
            live("both", 1),
            live("only-primary", 2),
            live("dup-primary", 3),
            live("dup-primary", 99), // ignored: the first row wins
            live("changed", 4),
        ];
        let replica = [
            live("extra", 5),
            live("changed", 40),
            live("both", 1),
            live("dup-primary", 3),
            live("both", 77),  // ignored
            live("extra", 55), // ignored
        ];
        for parts in [1, 3] {
            let dir = tempfile::tempdir().unwrap();
            let p = side(dir.path(), "p", parts, &primary);
            let r = side(dir.path(), "r", parts, &replica);
            let mut seen = Vec::new();
            let dups = join_partitioned(&p, &r, 2, |p, r| {
                seen.push((
                    p.map(|e| (e.key.clone(), e.size)),
                    r.map(|e| (e.key.clone(), e.size)),
                ));
                Ok(())
            })
            .unwrap();
            assert_eq!(dups, 3, "parts {parts}");
            seen.sort();
            let k = |s: &str, n| Some((s.to_string(), n));
            assert_eq!(
                seen,
                vec![
                    (None, k("extra", 5)),
                    (k("both", 1), k("both", 1)),
                    (k("changed", 4), k("changed", 40)),
                    (k("dup-primary", 3), k("dup-primary", 3)),
                    (k("only-primary", 2), None),
                ],
                "parts {parts}"
            );
            // Each partition file is removed once joined.
            assert!(p.files.iter().chain(&r.files).all(|f| !f.exists()));
        }
    }

    #[test]
    fn md5_etags_decode_like_the_hex_crate() {
        let mut out = [0u8; 16];
        for t in [
            "0123456789abcdef0123456789abcdef",
            "d41d8cd98f00b204e9800998ecf8427e",
            "ffffffffffffffffffffffffffffffff",
        ] {
            assert!(lower_hex_16(t.as_bytes(), &mut out), "{t}");
            assert_eq!(out.to_vec(), hex::decode(t).unwrap());
        }
        for t in [
            "0123456789ABCDEF0123456789abcdef",
            "0123456789abcdef0123456789abcdeg",
            "0123456789abcdef0123456789abcd-1",
            "0123456789abcdef0123456789abcd\u{e9}",
        ] {
            assert!(!lower_hex_16(t.as_bytes(), &mut out), "{t}");
        }
    }

    #[test]
    fn partition_count_follows_the_budget() {
        assert_eq!(partitions_for(0, 96 << 20), 1);
        assert_eq!(partitions_for(457_000_000, 64 << 20), 164);
        assert!(partitions_for(u64::MAX, 1) <= 512);
    }
}
