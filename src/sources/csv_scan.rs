//! A quote-aware scan of CSV bytes into records, and of one record into its fields.
//!
//! It reads exactly what the `csv` crate reads with the replay's settings (no header, `,`
//! between fields, `"` quotes with `""` for a quote inside them, a record ended by `\n`, `\r`
//! or `\r\n`, empty lines skipped, a leading UTF-8 BOM dropped, a quote inside an unquoted field
//! taken literally), but without tokenizing every record: [`Records`] finds where each record
//! starts and ends with `memchr` over the bytes, [`fields`] splits a record into fields lazily
//! (a replay's worker reads only the first, the key, of a record it does not own), and
//! [`read_records`] reads a file in chunks that stay in the cache. The tests hold all three
//! against the `csv` crate.

use std::borrow::Cow;
use std::io::{self, Read};
use std::iter::Peekable;

use memchr::{memchr, memchr3_iter, Memchr3};

/// The UTF-8 byte order mark, dropped at the start of a file as the `csv` crate does.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// One record: its bytes without the terminator, and where it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The record's bytes, quotes and delimiters included, terminator excluded; never empty.
    pub bytes: &'a [u8],
    /// The 1-based line of the record's first byte.
    pub line: u64,
    /// Whether a terminator ends the record (only the last record of a file may lack one).
    pub terminated: bool,
}

/// The records of one file's bytes (or of a chunk of them), in order.
pub struct Records<'a> {
    bytes: &'a [u8],
    /// The `"`, `\r` and `\n` not looked at yet, found by one `memchr3` pass over the bytes
    /// rather than a search per record.
    events: Peekable<Memchr3<'a>>,
    /// Where the scan goes on: after the last record's terminator, or after the BOM.
    position: usize,
    /// The line at `position`.
    line: u64,
    /// Whether `bytes` is a chunk that more bytes follow: a record that runs to its end may
    /// go on in them, so it is left for the next chunk.
    partial: bool,
}

impl<'a> Records<'a> {
    /// The records of `bytes`, the whole content of a file.
    pub fn new(bytes: &'a [u8]) -> Records<'a> {
        Records::of_chunk(bytes, true, 1, false)
    }

    /// The records of a chunk of a file: `first` if it starts the file, starting at `line`,
    /// and `partial` unless it ends the file.
    fn of_chunk(bytes: &'a [u8], first: bool, line: u64, partial: bool) -> Records<'a> {
        let position = if first && bytes.starts_with(BOM) {
            BOM.len()
        } else {
            0
        };
        Records {
            bytes,
            events: memchr3_iter(b'"', b'\n', b'\r', bytes).peekable(),
            position,
            line,
            partial,
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;

    /// Outside quotes only `"`, `\r` and `\n` matter: a terminator ends the record, and a quote
    /// opens a quoted field only at the start of a field (the record's first byte, or right
    /// after a `,`); anywhere else it is a literal character. Inside quotes only `"` matters:
    /// `""` is a literal quote, a single one closes the field. A quoted field left open runs to
    /// the end.
    fn next(&mut self) -> Option<Record<'a>> {
        let bytes = self.bytes;
        // Terminators between records, and empty lines, are skipped: each is an event.
        while self.events.next_if_eq(&self.position).is_some() {
            match bytes[self.position] {
                b'\n' => self.line += 1,
                b'\r' => {}
                _ => break,
            }
            self.position += 1;
        }
        let start = self.position;
        if start >= bytes.len() {
            return None;
        }
        // A quote at the record's start was taken above: it opens the first field.
        let mut quoted = bytes[start] == b'"';
        let mut newlines = 0;
        let end = loop {
            if quoted {
                match self.events.next() {
                    None => break bytes.len(),
                    Some(at) if bytes[at] == b'\n' => newlines += 1,
                    Some(at) if bytes[at] == b'\r' => {}
                    // `""` inside quotes is a quote; a single one closes the field.
                    Some(at) => {
                        quoted = self
                            .events
                            .next_if(|&next| next == at + 1 && bytes[next] == b'"')
                            .is_some()
                    }
                }
                continue;
            }
            match self.events.next() {
                None => break bytes.len(),
                Some(at) if bytes[at] != b'"' => break at,
                Some(at) => quoted = bytes[at - 1] == b',',
            }
        };
        if self.partial && end == bytes.len() {
            return None;
        }
        let record = Record {
            bytes: &bytes[start..end],
            line: self.line,
            terminated: end < bytes.len(),
        };
        self.line += newlines;
        // The terminator's event is taken: the scan goes on after it.
        self.position = end;
        if let Some(&terminator) = bytes.get(end) {
            self.line += u64::from(terminator == b'\n');
            self.position += 1;
        }
        Some(record)
    }
}

/// The bytes read at a time by [`read_records`]: small enough to stay in the cache while they
/// are scanned and parsed.
pub const CHUNK_BYTES: usize = 1 << 17;

/// Hands every record of `input` to `each`, in order, reading `chunk` bytes at a time (a record
/// longer than that is read whole before it is handed on).
pub fn read_records<R: Read>(
    mut input: R,
    chunk: usize,
    mut each: impl FnMut(Record<'_>),
) -> io::Result<()> {
    // The first chunk holds a whole BOM if the input starts with one.
    let mut buffer = vec![0; chunk.max(BOM.len())];
    let (mut filled, mut line, mut first) = (0, 1, true);
    loop {
        let mut end_of_input = false;
        while filled < buffer.len() {
            match input.read(&mut buffer[filled..]) {
                Ok(0) => {
                    end_of_input = true;
                    break;
                }
                Ok(read) => filled += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        let mut records = Records::of_chunk(&buffer[..filled], first, line, !end_of_input);
        for record in &mut records {
            each(record);
        }
        if end_of_input {
            return Ok(());
        }
        let (consumed, next_line) = (records.position, records.line);
        (first, line) = (false, next_line);
        buffer.copy_within(consumed..filled, 0);
        filled -= consumed;
        if filled == buffer.len() {
            // One record fills the buffer: read it whole.
            buffer.resize(2 * buffer.len(), 0);
        }
    }
}

/// The fields of one record (its bytes as [`Records`] gives them): the bytes of each,
/// unquoted, borrowed from the record unless a doubled quote had to be undone.
pub fn fields(record: &[u8]) -> Fields<'_> {
    Fields {
        record,
        next: Some(0),
    }
}

/// The iterator of [`fields`].
pub struct Fields<'a> {
    record: &'a [u8],
    /// Where the next field starts; `None` after the last field.
    next: Option<usize>,
}

/// Where a field lies in its record, quotes included, delimiter excluded.
struct Span {
    start: usize,
    end: usize,
    /// Whether the field starts with a quote, which is then not part of its text.
    quoted: bool,
}

impl Fields<'_> {
    fn next_span(&mut self) -> Option<Span> {
        let start = self.next?;
        let bytes = self.record;
        if bytes.get(start) != Some(&b'"') {
            let end = self.end_at_delimiter(start);
            return Some(Span {
                start,
                end,
                quoted: false,
            });
        }
        let mut position = start + 1;
        loop {
            let Some(found) = memchr(b'"', &bytes[position..]) else {
                // Left open: the field runs to the end of the record.
                self.next = None;
                return Some(Span {
                    start,
                    end: bytes.len(),
                    quoted: true,
                });
            };
            position += found + 1;
            if bytes.get(position) == Some(&b'"') {
                position += 1;
            } else {
                break;
            }
        }
        // Whatever follows the closing quote up to the delimiter belongs to the field.
        let end = self.end_at_delimiter(position);
        Some(Span {
            start,
            end,
            quoted: true,
        })
    }

    /// The end of the field text from `from` on: the next `,` (the next field starts after
    /// it) or the end of the record. Fields are short: a plain loop beats `memchr`'s setup.
    fn end_at_delimiter(&mut self, from: usize) -> usize {
        match self.record[from..].iter().position(|&b| b == b',') {
            Some(comma) => {
                self.next = Some(from + comma + 1);
                from + comma
            }
            None => {
                self.next = None;
                self.record.len()
            }
        }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Cow<'a, [u8]>;

    fn next(&mut self) -> Option<Cow<'a, [u8]>> {
        let span = self.next_span()?;
        let raw = &self.record[span.start..span.end];
        Some(if span.quoted {
            unquote(raw)
        } else {
            Cow::Borrowed(raw)
        })
    }
}

/// The text of a quoted field from its raw bytes (opening quote first): doubled quotes undone,
/// the closing quote dropped, what follows it kept.
fn unquote(raw: &[u8]) -> Cow<'_, [u8]> {
    let mut field = Cow::Borrowed(&raw[..0]);
    let mut rest = &raw[1..];
    while let Some(quote) = memchr(b'"', rest) {
        append(&mut field, &rest[..quote]);
        rest = &rest[quote + 1..];
        match rest.strip_prefix(b"\"") {
            Some(after) => {
                field.to_mut().push(b'"');
                rest = after;
            }
            None => break,
        }
    }
    append(&mut field, rest);
    field
}

/// Appends `more` to `field`, which stays borrowed while it is one piece of the record.
fn append<'a>(field: &mut Cow<'a, [u8]>, more: &'a [u8]) {
    if more.is_empty() {
        return;
    }
    match field {
        Cow::Borrowed([]) => *field = Cow::Borrowed(more),
        _ => field.to_mut().extend_from_slice(more),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memchr::memchr_iter;
    use proptest::prelude::*;

    /// What the `csv` crate reads from `bytes` with the replay's settings: each record's fields
    /// and the line of its first byte. The crate reports a record's position where the previous
    /// record ended (before the blank lines, or the `\n` of a `\r\n`, it skips), so the line of
    /// the first byte is counted from there.
    fn reference(bytes: &[u8]) -> Vec<(Vec<Vec<u8>>, u64)> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(bytes);
        let mut records = Vec::new();
        let mut record = csv::ByteRecord::new();
        while reader.read_byte_record(&mut record).unwrap() {
            let mut after_previous = record.position().unwrap().byte() as usize;
            if after_previous == 0 && bytes.starts_with(BOM) {
                after_previous = BOM.len();
            }
            let first_byte = after_previous
                + bytes[after_previous..]
                    .iter()
                    .take_while(|&&b| b == b'\n' || b == b'\r')
                    .count();
            let line = 1 + memchr_iter(b'\n', &bytes[..first_byte]).count() as u64;
            records.push((record.iter().map(<[u8]>::to_vec).collect(), line));
        }
        records
    }

    /// The same through [`Records`] and [`fields`], checking on the way that a record knows
    /// whether a terminator ended it.
    fn scanned(bytes: &[u8]) -> Vec<(Vec<Vec<u8>>, u64)> {
        Records::new(bytes)
            .map(|record| {
                let offset = record.bytes.as_ptr() as usize - bytes.as_ptr() as usize;
                let end = offset + record.bytes.len();
                assert_eq!(record.terminated, end < bytes.len());
                let fields = fields(record.bytes).map(Cow::into_owned).collect();
                (fields, record.line)
            })
            .collect()
    }

    fn fields_of(text: &str) -> Vec<Vec<String>> {
        scanned(text.as_bytes())
            .into_iter()
            .map(|(fields, _)| {
                fields
                    .into_iter()
                    .map(|f| String::from_utf8(f).unwrap())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn quoted_fields_hold_delimiters_newlines_and_doubled_quotes() {
        let text = "1,\"a,b\",\"line\nbreak\"\n2,\"say \"\"hi\"\"\",x\n3,\"\",\"\"\"\"\n";
        assert_eq!(
            fields_of(text),
            vec![
                vec!["1", "a,b", "line\nbreak"],
                vec!["2", "say \"hi\"", "x"],
                vec!["3", "", "\""],
            ]
        );
        let lines: Vec<u64> = Records::new(text.as_bytes()).map(|r| r.line).collect();
        assert_eq!(lines, vec![1, 3, 4]);
        assert_eq!(scanned(text.as_bytes()), reference(text.as_bytes()));
    }

    #[test]
    fn a_quote_inside_an_unquoted_field_is_literal_and_text_after_a_closing_quote_is_kept() {
        let text = "a\"b,\"c\"d\"e,\"f\n\"g\"\"\nx,\"never closed\n";
        assert_eq!(
            fields_of(text),
            vec![
                vec!["a\"b", "cd\"e", "f\ng\"\""],
                vec!["x", "never closed\n"]
            ]
        );
        assert_eq!(scanned(text.as_bytes()), reference(text.as_bytes()));
    }

    #[test]
    fn crlf_lone_cr_blank_lines_and_a_bom_end_or_separate_records() {
        let text = "\u{feff}1,a\r\n2,b\r\r\n\n3,c\r4,\"d\r\n\"\r\n5";
        assert_eq!(
            fields_of(text),
            vec![
                vec!["1", "a"],
                vec!["2", "b"],
                vec!["3", "c"],
                vec!["4", "d\r\n"],
                vec!["5"],
            ]
        );
        let lines: Vec<u64> = Records::new(text.as_bytes()).map(|r| r.line).collect();
        assert_eq!(lines, vec![1, 2, 4, 4, 6]);
        assert_eq!(scanned(text.as_bytes()), reference(text.as_bytes()));
    }

    #[test]
    fn empty_input_and_blank_lines_have_no_records() {
        for text in ["", "\n", "\r\n\r\n", "\u{feff}", "\u{feff}\n"] {
            assert_eq!(scanned(text.as_bytes()), vec![], "{text:?}");
            assert_eq!(reference(text.as_bytes()), vec![], "{text:?}");
        }
        // a line of one space is a record of one field
        assert_eq!(fields_of(" \n"), vec![vec![" "]]);
        assert_eq!(fields_of(",\n"), vec![vec!["", ""]]);
    }

    /// Pieces random inputs are made of: everything the scan treats specially, ordinary text,
    /// a multi-byte character, a byte that is not UTF-8 and a BOM out of place.
    fn piece() -> impl Strategy<Value = &'static [u8]> {
        prop_oneof![
            Just(&b"\""[..]),
            Just(&b"\"\""[..]),
            Just(&b","[..]),
            Just(&b"\n"[..]),
            Just(&b"\r"[..]),
            Just(&b"\r\n"[..]),
            Just(&b"a"[..]),
            Just(&b"12"[..]),
            Just(&b" "[..]),
            Just("中".as_bytes()),
            Just(&b"\xff"[..]),
            Just(BOM),
        ]
    }

    /// The records of `bytes` read `chunk` bytes at a time, as [`scanned`] gives them.
    fn read_in_chunks(bytes: &[u8], chunk: usize) -> Vec<(Vec<Vec<u8>>, u64)> {
        let mut records = Vec::new();
        read_records(bytes, chunk, |record| {
            let fields = fields(record.bytes).map(Cow::into_owned).collect();
            records.push((fields, record.line));
        })
        .unwrap();
        records
    }

    #[test]
    fn records_split_across_chunks_are_read_whole() {
        // a quoted newline, a doubled quote, a CRLF and a BOM at every possible cut
        let text = "\u{feff}1,\"a\nb\"\r\n2,\"say \"\"x\"\"\",3\r\n\n4,\"open\n";
        let whole = scanned(text.as_bytes());
        assert_eq!(whole.len(), 3);
        for chunk in 1..=text.len() + 1 {
            assert_eq!(
                read_in_chunks(text.as_bytes(), chunk),
                whole,
                "chunks of {chunk}"
            );
        }
        assert_eq!(read_in_chunks(b"", 4), vec![]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn records_fields_and_lines_are_those_of_the_csv_crate(
            bom in any::<bool>(),
            pieces in proptest::collection::vec(piece(), 0..40),
            chunk in 1..64usize,
        ) {
            let mut bytes = if bom { BOM.to_vec() } else { Vec::new() };
            for piece in pieces {
                bytes.extend_from_slice(piece);
            }
            let expected = reference(&bytes);
            prop_assert_eq!(scanned(&bytes), expected.clone());
            prop_assert_eq!(read_in_chunks(&bytes, chunk), expected);
        }
    }
}
