//! CSV, versions 1 and 2 (the same shape: v2's nested fields are dotted
//! columns, `dimensions.length`): a header row, then one product a row.
//! A UTF-8 byte-order mark is skipped; CRLF and LF both end rows; quoted
//! fields may hold commas, quotes (doubled) and newlines. A row with another
//! number of fields than the header, or bytes that are not UTF-8, make the
//! file unreadable (`FeedError`): it is rejected, not half-applied.

use super::{Adapter, ControlFlow, FeedError};
use crate::feeds::RawRow;
use std::io::Read;

pub struct Csv;

impl Adapter for Csv {
    fn read(
        &self,
        input: &mut dyn Read,
        each: &mut dyn FnMut(RawRow) -> ControlFlow<()>,
    ) -> Result<(), FeedError> {
        let (input, start) = super::RowBytes::new(input);
        let mut reader = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(SkipBom::new(input));
        // one record, read into again and again
        let mut r = ::csv::StringRecord::new();
        let header: Vec<String> = match reader.read_record(&mut r) {
            Ok(false) => return Err(FeedError::Empty),
            Err(e) => return Err(error(&e, 0)),
            Ok(true) => r.iter().map(|f| f.trim().to_owned()).collect(),
        };
        if header.len() > super::MAX_ROW_FIELDS {
            return Err(FeedError::RowTooLarge {
                limit: super::MAX_ROW_BYTES,
            });
        }
        start.next_row();
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = header.iter().find(|h| !seen.insert(h.as_str())) {
            return Err(FeedError::Malformed {
                row: 0,
                reason: format!(
                    "the header names column '{}' twice",
                    crate::domain::text::printable(dup, 50)
                ),
            });
        }
        for number in 1u64.. {
            if !reader.read_record(&mut r).map_err(|e| error(&e, number))? {
                break;
            }
            if r.len() != header.len() {
                return Err(FeedError::Malformed {
                    row: number,
                    reason: format!("{} fields where the header has {}", r.len(), header.len()),
                });
            }
            let row: RawRow = header
                .iter()
                .zip(r.iter())
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.clone(), v.to_owned()))
                .collect();
            if each(row).is_break() {
                break;
            }
            start.next_row();
        }
        Ok(())
    }
}

fn error(e: &::csv::Error, row: u64) -> FeedError {
    match e.kind() {
        ::csv::ErrorKind::Utf8 { .. } => FeedError::BadUtf8 { row },
        ::csv::ErrorKind::Io(io) => FeedError::from_io(io),
        _ => FeedError::Malformed {
            row,
            reason: e.to_string(),
        },
    }
}

/// Drops a UTF-8 byte-order mark at the very start, passes the rest through.
struct SkipBom<R> {
    inner: R,
    checked: bool,
    held: Vec<u8>,
}

impl<R: Read> SkipBom<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            checked: false,
            held: Vec::new(),
        }
    }
}

impl<R: Read> Read for SkipBom<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.checked {
            self.checked = true;
            let mut first = [0u8; 3];
            let mut got = 0;
            while got < 3 {
                let n = self.inner.read(&mut first[got..])?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            if first[..got] != [0xEF, 0xBB, 0xBF] {
                self.held = first[..got].to_vec();
            }
        }
        if !self.held.is_empty() {
            let n = self.held.len().min(buf.len());
            buf[..n].copy_from_slice(&self.held[..n]);
            self.held.drain(..n);
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::feeds::adapters::collect;

    fn rows(bytes: &[u8]) -> Result<Vec<RawRow>, FeedError> {
        collect(&Csv, bytes)
    }

    fn field<'a>(r: &'a RawRow, f: &str) -> &'a str {
        r.get(f).map(String::as_str).unwrap_or("")
    }

    #[test]
    fn bom_crlf_quoted_commas_quotes_and_newlines() {
        let file = b"\xEF\xBB\xBFsku,name,description\r\nMUG-1,\"Mug, blue\",\"350 ml\r\n\"\"stoneware\"\"\"\r\nMUG-2,Cup,\n";
        let got = rows(file).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(field(&got[0], "sku"), "MUG-1");
        assert_eq!(field(&got[0], "name"), "Mug, blue");
        assert_eq!(field(&got[0], "description"), "350 ml\r\n\"stoneware\"");
        assert_eq!(field(&got[1], "name"), "Cup");
        // an empty cell is an absent field
        assert!(!got[1].contains_key("description"));
    }

    #[test]
    fn dotted_columns_carry_v2_nested_fields() {
        let got = rows(b"sku,dimensions.length,dimensions.unit\nA,10,cm\n").unwrap();
        assert_eq!(field(&got[0], "dimensions.length"), "10");
    }

    #[test]
    fn unreadable_files_end_with_an_error_that_names_the_row() {
        assert_eq!(rows(b""), Err(FeedError::Empty));
        assert_eq!(rows(b"sku,name\n"), Ok(vec![]), "a header alone is no rows");
        let mut seen = 0;
        let short = Csv.read(&mut &b"sku,name\nA,a\nB\nC,c\n"[..], &mut |_| {
            seen += 1;
            ControlFlow::Continue(())
        });
        assert!(
            matches!(short, Err(FeedError::Malformed { row: 2, .. })),
            "{short:?}"
        );
        assert_eq!(
            seen, 1,
            "the rows before the error were handed over, none after"
        );
        assert!(matches!(
            rows(b"sku,name\nA,caf\xC3\nB,b\n"),
            Err(FeedError::BadUtf8 { row: 1 })
        ));
        assert!(matches!(
            rows(b"sku,name,sku\nA,a,B\n"),
            Err(FeedError::Malformed { row: 0, .. })
        ));
    }

    #[test]
    fn the_caller_may_stop_reading() {
        let mut seen = 0;
        let done = Csv.read(&mut &b"sku\nA\nB\nC\n"[..], &mut |_| {
            seen += 1;
            if seen == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!((done, seen), (Ok(()), 2));
    }

    #[test]
    fn a_bom_split_across_reads_is_still_skipped() {
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let mut got = Vec::new();
        Csv.read(&mut OneByte(b"\xEF\xBB\xBFsku\nA\n"), &mut |r| {
            got.push(r);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(field(&got[0], "sku"), "A");
    }
}
