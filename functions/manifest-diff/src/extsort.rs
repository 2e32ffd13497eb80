//! External sort of entries by key, for inventory files that arrive in no documented order.
//! Entries collect in memory up to a byte budget, are sorted and spilled as runs to a
//! temporary directory (/tmp in Lambda), then k-way merged. Peak memory is the budget plus one
//! buffered entry per run, whatever the number of objects.
//!
//! The run format is a small length-prefixed binary record written by hand: it is read back
//! only by this module, and a general serializer would cost more than the sort itself.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::model::Entry;

pub struct ExternalSorter {
    buf: Vec<Entry>,
    buf_bytes: usize,
    budget: usize,
    dir: PathBuf,
    runs: Vec<PathBuf>,
    pushed: u64,
}

impl ExternalSorter {
    /// `dir` must exist and is owned by the caller (a `TempDir`, removed with it).
    pub fn new(dir: &Path, budget_bytes: usize) -> Self {
        ExternalSorter {
            buf: Vec::new(),
            buf_bytes: 0,
            budget: budget_bytes.max(1 << 16),
            dir: dir.to_path_buf(),
            runs: Vec::new(),
            pushed: 0,
        }
    }

    pub fn push(&mut self, e: Entry) -> io::Result<()> {
        self.buf_bytes += e.footprint();
        self.buf.push(e);
        self.pushed += 1;
        if self.buf_bytes >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.pushed
    }

    pub fn is_empty(&self) -> bool {
        self.pushed == 0
    }

    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    fn sort_buf(&mut self) {
        // Stable, so that of duplicate keys the first pushed comes first.
        self.buf
            .sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
    }

    fn spill(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.sort_buf();
        let path = self.dir.join(format!("run-{:05}.bin", self.runs.len()));
        let mut w = BufWriter::with_capacity(1 << 18, File::create(&path)?);
        for e in self.buf.drain(..) {
            write_entry(&mut w, &e)?;
        }
        w.flush()?;
        self.buf_bytes = 0;
        self.runs.push(path);
        Ok(())
    }

    /// The entries in ascending byte order of key. Duplicate keys (which a well-formed
    /// inventory never has for current versions) keep the first seen and are counted.
    pub fn finish(mut self) -> io::Result<Sorted> {
        if self.runs.is_empty() {
            self.sort_buf();
            return Ok(Sorted {
                inner: Inner::Memory(std::mem::take(&mut self.buf).into_iter()),
                last: None,
                duplicates: 0,
            });
        }
        self.spill()?;
        let mut readers = Vec::with_capacity(self.runs.len());
        let mut heap = BinaryHeap::with_capacity(self.runs.len());
        for (i, path) in self.runs.iter().enumerate() {
            let mut r = BufReader::with_capacity(1 << 16, File::open(path)?);
            if let Some(e) = read_entry(&mut r)? {
                heap.push(Reverse(HeapItem(e, i)));
            }
            readers.push(r);
        }
        Ok(Sorted {
            inner: Inner::Runs { readers, heap },
            last: None,
            duplicates: 0,
        })
    }
}

struct HeapItem(Entry, usize);

impl PartialEq for HeapItem {
    fn eq(&self, o: &Self) -> bool {
        self.0.key == o.0.key && self.1 == o.1
    }
}
impl Eq for HeapItem {}
impl PartialOrd for HeapItem {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for HeapItem {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Ties broken by run index so the first-pushed duplicate wins deterministically.
        self.0
            .key
            .as_bytes()
            .cmp(o.0.key.as_bytes())
            .then(self.1.cmp(&o.1))
    }
}

enum Inner {
    Memory(std::vec::IntoIter<Entry>),
    Runs {
        readers: Vec<BufReader<File>>,
        heap: BinaryHeap<Reverse<HeapItem>>,
    },
}

pub struct Sorted {
    inner: Inner,
    last: Option<String>,
    pub duplicates: u64,
}

impl Sorted {
    fn next_raw(&mut self) -> io::Result<Option<Entry>> {
        match &mut self.inner {
            Inner::Memory(it) => Ok(it.next()),
            Inner::Runs { readers, heap } => {
                let Some(Reverse(HeapItem(e, i))) = heap.pop() else {
                    return Ok(None);
                };
                if let Some(next) = read_entry(&mut readers[i])? {
                    heap.push(Reverse(HeapItem(next, i)));
                }
                Ok(Some(e))
            }
        }
    }

    /// The next entry, skipping duplicates of the previous key.
    pub fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        loop {
            let Some(e) = self.next_raw()? else {
                return Ok(None);
            };
            if self.last.as_deref() == Some(e.key.as_str()) {
                self.duplicates += 1;
                continue;
            }
            self.last = Some(e.key.clone());
            return Ok(Some(e));
        }
    }

    /// Up to `n` entries.
    pub fn next_page(&mut self, n: usize) -> io::Result<Vec<Entry>> {
        let mut page = Vec::with_capacity(n);
        while page.len() < n {
            match self.next_entry()? {
                Some(e) => page.push(e),
                None => break,
            }
        }
        Ok(page)
    }
}

const FLAG_DELETE_MARKER: u8 = 1;
const FLAG_ETAG: u8 = 2;
const FLAG_MODIFIED: u8 = 4;

fn write_entry(w: &mut impl Write, e: &Entry) -> io::Result<()> {
    let mut flags = 0u8;
    if e.delete_marker {
        flags |= FLAG_DELETE_MARKER;
    }
    if e.etag.is_some() {
        flags |= FLAG_ETAG;
    }
    if e.last_modified.is_some() {
        flags |= FLAG_MODIFIED;
    }
    w.write_all(&[flags])?;
    w.write_all(&(e.key.len() as u32).to_le_bytes())?;
    w.write_all(e.key.as_bytes())?;
    w.write_all(&e.size.to_le_bytes())?;
    if let Some(t) = e.last_modified {
        w.write_all(&t.to_le_bytes())?;
    }
    if let Some(etag) = &e.etag {
        let b = etag.as_bytes();
        let len = b.len().min(u16::MAX as usize);
        w.write_all(&(len as u16).to_le_bytes())?;
        w.write_all(&b[..len])?;
    }
    Ok(())
}

fn read_entry(r: &mut impl Read) -> io::Result<Option<Entry>> {
    let mut flags = [0u8; 1];
    match r.read_exact(&mut flags) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let flags = flags[0];
    let mut u32b = [0u8; 4];
    r.read_exact(&mut u32b)?;
    let mut key = vec![0u8; u32::from_le_bytes(u32b) as usize];
    r.read_exact(&mut key)?;
    let key = String::from_utf8(key).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut u64b = [0u8; 8];
    r.read_exact(&mut u64b)?;
    let size = u64::from_le_bytes(u64b);
    let last_modified = if flags & FLAG_MODIFIED != 0 {
        r.read_exact(&mut u64b)?;
        Some(i64::from_le_bytes(u64b))
    } else {
        None
    };
    let etag = if flags & FLAG_ETAG != 0 {
        let mut u16b = [0u8; 2];
        r.read_exact(&mut u16b)?;
        let mut b = vec![0u8; u16::from_le_bytes(u16b) as usize];
        r.read_exact(&mut b)?;
        Some(String::from_utf8(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?)
    } else {
        None
    };
    Ok(Some(Entry {
        key,
        size,
        etag,
        last_modified,
        delete_marker: flags & FLAG_DELETE_MARKER != 0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize) -> Vec<Entry> {
        // A deterministic shuffle: multiplying by a unit modulo n permutes 0..n.
        (0..n)
            .map(|i| {
                let j = (i * 7919) % n;
                if j.is_multiple_of(5) {
                    Entry::deleted(&format!("k/{j:06}/é"), j as i64)
                } else {
                    Entry {
                        key: format!("k/{j:06}/é"),
                        size: j as u64,
                        etag: (!j.is_multiple_of(3)).then(|| format!("etag{j}")),
                        last_modified: (!j.is_multiple_of(7)).then_some(j as i64 * 10),
                        delete_marker: false,
                    }
                }
            })
            .collect()
    }

    fn drain(mut s: Sorted) -> Vec<Entry> {
        let mut out = vec![];
        while let Some(e) = s.next_entry().unwrap() {
            out.push(e);
        }
        out
    }

    #[test]
    fn sorts_in_memory_and_through_runs_identically() {
        let input = entries(10_000);
        let mut expected = input.clone();
        expected.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
        for budget in [usize::MAX, 1 << 16] {
            let dir = tempfile::tempdir().unwrap();
            let mut s = ExternalSorter::new(dir.path(), budget);
            for e in input.iter().cloned() {
                s.push(e).unwrap();
            }
            let spilled = s.runs();
            let out = drain(s.finish().unwrap());
            assert_eq!(out, expected, "budget {budget}");
            if budget != usize::MAX {
                assert!(spilled > 5, "expected several runs, got {spilled}");
            }
        }
    }

    #[test]
    fn duplicates_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ExternalSorter::new(dir.path(), 1 << 16);
        for i in 0..3000 {
            s.push(Entry::live(&format!("k{}", i % 1000), i, "e", 0))
                .unwrap();
        }
        let mut sorted = s.finish().unwrap();
        let mut n = 0;
        while let Some(e) = sorted.next_entry().unwrap() {
            // The first pushed copy wins.
            assert!(e.size < 1000, "{e:?}");
            n += 1;
        }
        assert_eq!(n, 1000);
        assert_eq!(sorted.duplicates, 2000);
    }
}
