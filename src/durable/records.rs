//! Checksummed records: how every durable file of a state dir is framed.
//!
//! A record is `length: u32 LE | crc32(payload): u32 LE | payload`, the payload a value in
//! bincode. A reader stops at the first record it cannot trust — a short header, a short
//! payload, a checksum that does not match, a payload that does not decode — and says where,
//! so a torn last write (the process died in the middle of it) is found and dropped instead
//! of being read as data.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The header: the payload's length and checksum.
const HEADER_BYTES: usize = 8;

/// The largest payload a record may have; a longer length field is corruption.
const MAX_PAYLOAD_BYTES: u32 = 1 << 30;

/// Appends `value` as one record to `out`; returns the record's size in bytes.
pub fn write_record<W: Write, T: Serialize>(
    out: &mut W,
    value: &T,
    scratch: &mut Vec<u8>,
) -> io::Result<u64> {
    scratch.clear();
    bincode::serialize_into(&mut *scratch, value).map_err(io::Error::other)?;
    let length = u32::try_from(scratch.len())
        .ok()
        .filter(|&length| length <= MAX_PAYLOAD_BYTES)
        .ok_or_else(|| io::Error::other("a record of more than 1 GiB"))?;
    let mut header = [0u8; HEADER_BYTES];
    header[..4].copy_from_slice(&length.to_le_bytes());
    header[4..].copy_from_slice(&crc32fast::hash(scratch).to_le_bytes());
    out.write_all(&header)?;
    out.write_all(scratch)?;
    Ok((HEADER_BYTES + scratch.len()) as u64)
}

/// Why a reader stopped before the end of its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Torn {
    /// Where the untrusted record starts: everything before it was read.
    pub offset: u64,
    pub reason: String,
}

/// Reads records one by one, tracking the offset of the end of the last good one.
pub struct RecordReader<R> {
    input: R,
    offset: u64,
    buffer: Vec<u8>,
}

impl RecordReader<BufReader<File>> {
    /// A reader of the file at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(RecordReader::new(BufReader::with_capacity(
            1 << 20,
            File::open(path)?,
        )))
    }
}

impl<R: Read> RecordReader<R> {
    pub fn new(input: R) -> Self {
        RecordReader {
            input,
            offset: 0,
            buffer: Vec::new(),
        }
    }

    /// The end of the last record read: the length of the trusted prefix of the file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next record: `Ok(None)` at a clean end of the file, `Err` at a record that cannot
    /// be trusted (and every later call returns the same error).
    pub fn read<T: DeserializeOwned>(&mut self) -> Result<Option<T>, Torn> {
        let torn = |reason: String| Torn {
            offset: self.offset,
            reason,
        };
        let mut header = [0u8; HEADER_BYTES];
        match read_full(&mut self.input, &mut header) {
            Ok(0) => return Ok(None),
            Ok(HEADER_BYTES) => {}
            Ok(read) => return Err(torn(format!("a header of {read} bytes, not 8"))),
            Err(error) => return Err(torn(error.to_string())),
        }
        let length = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        let checksum = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if length > MAX_PAYLOAD_BYTES {
            return Err(torn(format!("a length of {length} bytes")));
        }
        self.buffer.resize(length as usize, 0);
        match read_full(&mut self.input, &mut self.buffer) {
            Ok(read) if read == length as usize => {}
            Ok(read) => return Err(torn(format!("{read} of {length} payload bytes"))),
            Err(error) => return Err(torn(error.to_string())),
        }
        if crc32fast::hash(&self.buffer) != checksum {
            return Err(torn("a checksum that does not match".to_string()));
        }
        let value = bincode::deserialize(&self.buffer)
            .map_err(|error| torn(format!("a payload that does not decode: {error}")))?;
        self.offset += (HEADER_BYTES + length as usize) as u64;
        Ok(Some(value))
    }
}

/// Reads until `buffer` is full or the input ends; returns how many bytes were read.
fn read_full<R: Read>(input: &mut R, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Makes a directory's entries (files created, renamed or removed in it) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(values: &[(u64, String)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        for value in values {
            write_record(&mut out, value, &mut scratch).unwrap();
        }
        out
    }

    fn read_all(bytes: &[u8]) -> (Vec<(u64, String)>, Option<Torn>, u64) {
        let mut reader = RecordReader::new(bytes);
        let mut values = Vec::new();
        loop {
            match reader.read() {
                Ok(Some(value)) => values.push(value),
                Ok(None) => return (values, None, reader.offset()),
                Err(torn) => return (values, Some(torn), reader.offset()),
            }
        }
    }

    #[test]
    fn records_read_back_in_order() {
        let values = vec![(1, "a".to_string()), (2, "bb".to_string())];
        let bytes = framed(&values);
        assert_eq!(read_all(&bytes), (values, None, bytes.len() as u64));
    }

    #[test]
    fn every_cut_of_the_last_record_is_torn_and_keeps_the_first() {
        let values = vec![(1, "first".to_string()), (2, "second".to_string())];
        let bytes = framed(&values);
        let first_end = framed(&values[..1]).len();
        for cut in first_end + 1..bytes.len() {
            let (read, torn, offset) = read_all(&bytes[..cut]);
            assert_eq!(read, values[..1]);
            assert_eq!(offset, first_end as u64);
            assert_eq!(torn.expect("torn").offset, first_end as u64, "cut at {cut}");
        }
    }

    #[test]
    fn a_flipped_bit_is_caught_by_the_checksum() {
        let values = vec![(1, "first".to_string()), (2, "second".to_string())];
        let mut bytes = framed(&values);
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        let (read, torn, _) = read_all(&bytes);
        assert_eq!(read, values[..1]);
        assert!(torn.unwrap().reason.contains("checksum"));
    }
}
