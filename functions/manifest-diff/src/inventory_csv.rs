//! S3 Inventory's CSV, split into fields.
//!
//! Hand-written rather than the `csv` crate because at 10 million rows per side the general
//! state machine (`csv_core`, a byte at a time) was the largest single cost of the inventory
//! join, ahead of gunzip. Inventory rows are regular: every field quoted, keys URL-encoded (so
//! no quote, comma or line break inside a field in practice), one row per line. This reader
//! finds each field's end with `memchr` and lends the fields in place, without copying them.
//!
//! It still reads any RFC 4180 CSV the way the `csv` crate does (quoted or bare fields, `""`
//! inside quotes, CRLF or LF, line breaks inside quotes, blank lines skipped, a last row
//! without a line break); a test checks the two agree on thousands of generated files read
//! in small pieces. Where the `csv` crate is lenient about malformed quoting (`"ab"c`), this
//! reader refuses the row and names it: an inventory file like that is corrupt.

use std::io::Read;

use memchr::{memchr, memchr3};

/// A row's fields, as [`crate::inventory::Schema::view`] reads them.
pub trait Fields {
    fn count(&self) -> usize;
    fn field(&self, i: usize) -> &[u8];
}

impl Fields for csv::ByteRecord {
    fn count(&self) -> usize {
        self.len()
    }
    fn field(&self, i: usize) -> &[u8] {
        &self[i]
    }
}

/// One row lent by [`FieldReader::next_row`].
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    buf: &'a [u8],
    spans: &'a [Span],
}

impl Fields for Row<'_> {
    fn count(&self) -> usize {
        self.spans.len()
    }
    fn field(&self, i: usize) -> &[u8] {
        let s = self.spans[i];
        &self.buf[s.start as usize..s.end as usize]
    }
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
    /// Holds `""` pairs still to be collapsed once the row is known to be complete.
    escaped: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("row {row}: {problem}")]
    Malformed { row: u64, problem: &'static str },
    #[error("row {row}: a row longer than {max} bytes")]
    TooLong { row: u64, max: usize },
    #[error("row {row}: {source}")]
    Io { row: u64, source: std::io::Error },
}

/// Outcome of splitting the bytes at the front of the buffer.
enum Split {
    /// A row ends `consumed` bytes in (its line break included).
    Row(usize),
    /// Only blank lines: skip `consumed` bytes.
    Blank(usize),
    /// The row continues past the bytes read so far.
    More,
}

/// Streams rows out of `inner` (already decompressed).
pub struct FieldReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    spans: Vec<Span>,
    rows: u64,
}

const CHUNK: usize = 256 << 10;
/// No inventory row comes near this; a file that does is not an inventory.
const MAX_ROW: usize = 64 << 20;

impl<R: Read> FieldReader<R> {
    pub fn new(inner: R) -> Self {
        FieldReader {
            inner,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            eof: false,
            spans: Vec::with_capacity(16),
            rows: 0,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The next row, or `None` at the end of the input.
    pub fn next_row(&mut self) -> Result<Option<Row<'_>>, CsvError> {
        loop {
            let data = &self.buf[self.start..self.end];
            match split(data, self.eof, &mut self.spans).map_err(|problem| CsvError::Malformed {
                row: self.rows + 1,
                problem,
            })? {
                Split::Blank(n) => {
                    self.start += n;
                }
                Split::Row(n) => {
                    let base = self.start;
                    self.start += n;
                    self.rows += 1;
                    let buf = &mut self.buf[..];
                    for s in self.spans.iter_mut() {
                        s.start += base as u32;
                        s.end += base as u32;
                        if s.escaped {
                            s.end = unescape(&mut buf[s.start as usize..s.end as usize]) as u32
                                + s.start;
                        }
                    }
                    return Ok(Some(Row {
                        buf: &self.buf,
                        spans: &self.spans,
                    }));
                }
                Split::More if self.eof => return Ok(None),
                Split::More => self.fill()?,
            }
        }
    }

    /// Moves the unread bytes to the front and reads more after them (growing the buffer
    /// for a row longer than it).
    fn fill(&mut self) -> Result<(), CsvError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_ROW {
                return Err(CsvError::TooLong {
                    row: self.rows + 1,
                    max: MAX_ROW,
                });
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(CsvError::Io {
                        row: self.rows + 1,
                        source,
                    })
                }
            }
        }
    }
}

/// Collapses each `""` in a quoted field's content to `"`, in place; returns the new length.
fn unescape(field: &mut [u8]) -> usize {
    let (mut r, mut w) = (0, 0);
    while r < field.len() {
        field[w] = field[r];
        r += if field[r] == b'"' { 2 } else { 1 };
        w += 1;
    }
    w
}

/// The inventory's own shape, `"a","b",…,"z"\n` with no `""` inside, in one pass over the
/// line eight bytes at a time (SWAR: no per-field call, no CPU-specific code, so arm64 gets
/// it too). `None` for anything else (an escaped quote, a bare field, a CR, a line break
/// inside quotes, a row not yet complete), which [`split`] then reads in full.
fn split_quoted_line(data: &[u8], spans: &mut Vec<Span>) -> Option<usize> {
    const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
    const BREAKS: u64 = u64::from_ne_bytes([b'\n'; 8]);
    /// The high bit of each byte of `w` that equals the pattern's byte (exact, no carries).
    fn matches(w: u64, pattern: u64) -> u64 {
        let x = w ^ pattern;
        !(((x & 0x7f7f_7f7f_7f7f_7f7f) + 0x7f7f_7f7f_7f7f_7f7f) | x) & 0x8080_8080_8080_8080
    }
    if data.first() != Some(&b'"') {
        return None;
    }
    // Where the next field's opening quote must be; inside a field, where its content starts.
    let mut expect = 0usize;
    let mut inside = false;
    let mut base = 0usize;
    while base < data.len() {
        // Little-endian so that the lowest set bit is the first byte, whatever the CPU.
        let w = match data.get(base..base + 8) {
            Some(b) => u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            None => {
                // The last few bytes, padded with zeros (which match neither pattern).
                let mut word = [0u8; 8];
                word[..data.len() - base].copy_from_slice(&data[base..]);
                u64::from_le_bytes(word)
            }
        };
        let mut hits = matches(w, QUOTES) | matches(w, BREAKS);
        while hits != 0 {
            let p = base + (hits.trailing_zeros() / 8) as usize;
            hits &= hits - 1;
            if data[p] == b'\n' {
                // Outside a field it ends the row only right after a closing quote (handled
                // there); anywhere else the row is not of this shape.
                return None;
            }
            if !inside {
                if p != expect {
                    return None;
                }
                inside = true;
                expect = p + 1;
                continue;
            }
            spans.push(Span {
                start: expect as u32,
                end: p as u32,
                escaped: false,
            });
            inside = false;
            match data.get(p + 1) {
                Some(b',') => expect = p + 2,
                Some(b'\n') => return Some(p + 2),
                _ => return None,
            }
        }
        base += 8;
    }
    None
}

/// Splits the row at the front of `data` into `spans` (offsets into `data`). Nothing is
/// changed in `data`, so `More` can be answered after reading further.
fn split(data: &[u8], eof: bool, spans: &mut Vec<Span>) -> Result<Split, &'static str> {
    spans.clear();
    if let Some(n) = split_quoted_line(data, spans) {
        return Ok(Split::Row(n));
    }
    spans.clear();
    // Blank lines between rows are skipped, as the csv crate does.
    let mut i = 0;
    while i < data.len() && (data[i] == b'\n' || data[i] == b'\r') {
        i += 1;
    }
    if i > 0 {
        return Ok(Split::Blank(i));
    }
    if data.is_empty() {
        return Ok(Split::More);
    }
    loop {
        let end_of_field;
        if data.get(i) == Some(&b'"') {
            let start = i + 1;
            let mut r = start;
            let mut escaped = false;
            loop {
                let Some(k) = memchr(b'"', &data[r..]) else {
                    return if eof {
                        Err("a quoted field is not closed before the end of the file")
                    } else {
                        Ok(Split::More)
                    };
                };
                let q = r + k;
                match data.get(q + 1) {
                    Some(b'"') => {
                        escaped = true;
                        r = q + 2;
                    }
                    None if !eof => return Ok(Split::More),
                    _ => {
                        spans.push(Span {
                            start: start as u32,
                            end: q as u32,
                            escaped,
                        });
                        end_of_field = q + 1;
                        break;
                    }
                }
            }
        } else {
            match memchr3(b',', b'\n', b'\r', &data[i..]) {
                Some(k) => end_of_field = i + k,
                None if eof => end_of_field = data.len(),
                None => return Ok(Split::More),
            }
            spans.push(Span {
                start: i as u32,
                end: end_of_field as u32,
                escaped: false,
            });
        }
        i = end_of_field;
        match data.get(i) {
            Some(b',') => i += 1,
            Some(b'\n') => return Ok(Split::Row(i + 1)),
            Some(b'\r') => {
                return match data.get(i + 1) {
                    Some(b'\n') => Ok(Split::Row(i + 2)),
                    None if !eof => Ok(Split::More),
                    _ => Ok(Split::Row(i + 1)),
                }
            }
            None if eof => return Ok(Split::Row(i)),
            None => return Ok(Split::More),
            Some(_) => return Err("a quoted field is followed by text before the next comma"),
        }
        // A comma at the very end of the input: one more, empty, field.
        if i == data.len() {
            if !eof {
                return Ok(Split::More);
            }
            spans.push(Span {
                start: i as u32,
                end: i as u32,
                escaped: false,
            });
            return Ok(Split::Row(i));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes a few at a time, so every row straddles a refill somewhere.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
        n: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.n = self.n.wrapping_mul(6364136223846793005).wrapping_add(1);
            let k = (1 + (self.n >> 33) % self.step)
                .min(buf.len())
                .min(self.data.len());
            buf[..k].copy_from_slice(&self.data[..k]);
            self.data = &self.data[k..];
            Ok(k)
        }
    }

    fn ours(data: &[u8], step: usize) -> Result<Vec<Vec<Vec<u8>>>, CsvError> {
        let mut r = FieldReader::new(Trickle { data, step, n: 7 });
        let mut out = Vec::new();
        while let Some(row) = r.next_row()? {
            out.push((0..row.count()).map(|i| row.field(i).to_vec()).collect());
        }
        Ok(out)
    }

    fn theirs(data: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(data);
        let mut rec = csv::ByteRecord::new();
        let mut out = Vec::new();
        while r.read_byte_record(&mut rec).unwrap() {
            out.push(rec.iter().map(<[u8]>::to_vec).collect());
        }
        out
    }

    #[test]
    fn agrees_with_the_csv_crate_on_generated_files() {
        let alphabet: &[&[u8]] = &[
            b"a",
            b"Z",
            b"0",
            b" ",
            b",",
            b"\"",
            b"\n",
            b"\r\n",
            b"%2B",
            b"+",
            "é".as_bytes(),
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |m: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % m as u64) as usize
        };
        for case in 0..3000 {
            let rows = 1 + next(6);
            let mut w = csv::WriterBuilder::new()
                .quote_style(if case % 2 == 0 {
                    csv::QuoteStyle::Always
                } else {
                    csv::QuoteStyle::Necessary
                })
                .terminator(if case % 3 == 0 {
                    csv::Terminator::CRLF
                } else {
                    csv::Terminator::Any(b'\n')
                })
                .flexible(true)
                .from_writer(Vec::new());
            for _ in 0..rows {
                let fields: Vec<Vec<u8>> = (0..1 + next(9))
                    .map(|_| {
                        (0..next(12))
                            .flat_map(|_| alphabet[next(alphabet.len())].to_vec())
                            .collect()
                    })
                    .collect();
                // A lone empty field is written as `""`; skip rows the csv crate would drop.
                w.write_record(&fields).unwrap();
            }
            let mut data = w.into_inner().unwrap();
            if case % 5 == 0 {
                // No line break after the last row, or blank lines between rows.
                while matches!(data.last(), Some(b'\n' | b'\r')) {
                    data.pop();
                }
            } else if case % 7 == 0 {
                data.extend_from_slice(b"\n\r\n");
            }
            let want = theirs(&data);
            for step in [1, 3, 64] {
                let got = ours(&data, step).unwrap();
                assert_eq!(
                    got,
                    want,
                    "case {case} step {step}: {:?}",
                    String::from_utf8_lossy(&data)
                );
            }
        }
    }

    #[test]
    fn inventory_rows_split_in_place() {
        let data = b"\"prod\",\"a%2Fb+c\",\"12\",\"\"\n\"prod\",\"x\"\"y\",\"3\",\"e\"\n";
        let got = ours(data, 5).unwrap();
        assert_eq!(
            got[0],
            vec![
                b"prod".to_vec(),
                b"a%2Fb+c".to_vec(),
                b"12".to_vec(),
                vec![]
            ]
        );
        assert_eq!(got[1][1], b"x\"y");
    }

    #[test]
    fn malformed_rows_are_named() {
        let e = ours(b"\"a\",\"b\"\n\"c\"d,\"e\"\n", 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 2") && e.contains("quoted field"), "{e}");
        let e = ours(b"\"a\",\"b\n", 4).unwrap_err().to_string();
        assert!(e.contains("row 1") && e.contains("not closed"), "{e}");
    }

    #[test]
    fn long_rows_grow_the_buffer() {
        let long = "k".repeat(3 * CHUNK);
        let data = format!("\"{long}\",\"1\"\n\"b\",\"2\"\n");
        let got = ours(data.as_bytes(), 1 << 16).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0][0].len(), long.len());
        assert_eq!(got[1][0], b"b");
    }
}
