//! CSV, versions 1 and 2 (the same shape: v2's nested fields are dotted
//! columns, `dimensions.length`): a header row, then one product a row.
//! A UTF-8 byte-order mark is skipped; CRLF and LF both end rows; quoted
//! fields may hold commas, quotes (doubled) and newlines. A row with another
//! number of fields than the header, or bytes that are not UTF-8, make the
//! file unreadable (`FeedError`): it is rejected, not half-applied.

use super::{Adapter, FeedError, Rows};
use crate::feeds::RawRow;
use std::io::Read;

pub struct Csv;

impl Adapter for Csv {
    fn rows<'r>(&self, input: Box<dyn Read + Send + 'r>) -> Rows<'r> {
        let mut records = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(SkipBom::new(input))
            .into_records();
        let header = match records.next() {
            None => return Box::new(std::iter::once(Err(FeedError::Empty))),
            Some(Err(e)) => return Box::new(std::iter::once(Err(error(&e, 0)))),
            Some(Ok(h)) => h.iter().map(|f| f.trim().to_owned()).collect::<Vec<_>>(),
        };
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = header.iter().find(|h| !seen.insert(h.as_str())) {
            let reason = format!(
                "the header names column '{}' twice",
                crate::domain::text::printable(dup, 50)
            );
            return Box::new(std::iter::once(Err(FeedError::Malformed {
                row: 0,
                reason,
            })));
        }
        let mut number = 0u64;
        let mut failed = false;
        Box::new(std::iter::from_fn(move || {
            if failed {
                return None;
            }
            let record = records.next()?;
            number += 1;
            let result = record.map_err(|e| error(&e, number)).and_then(|r| {
                if r.len() != header.len() {
                    return Err(FeedError::Malformed {
                        row: number,
                        reason: format!("{} fields where the header has {}", r.len(), header.len()),
                    });
                }
                Ok(header
                    .iter()
                    .zip(r.iter())
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.clone(), v.to_owned()))
                    .collect::<RawRow>())
            });
            failed = result.is_err();
            Some(result)
        }))
    }
}

fn error(e: &::csv::Error, row: u64) -> FeedError {
    match e.kind() {
        ::csv::ErrorKind::Utf8 { .. } => FeedError::BadUtf8 { row },
        ::csv::ErrorKind::Io(io) => FeedError::Read(io.to_string()),
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

    fn rows(bytes: &[u8]) -> Vec<Result<RawRow, FeedError>> {
        Csv.rows(Box::new(std::io::Cursor::new(bytes.to_vec())))
            .collect()
    }

    fn field<'a>(r: &'a Result<RawRow, FeedError>, f: &str) -> &'a str {
        r.as_ref().unwrap().get(f).map(String::as_str).unwrap_or("")
    }

    #[test]
    fn bom_crlf_quoted_commas_quotes_and_newlines() {
        let file = b"\xEF\xBB\xBFsku,name,description\r\nMUG-1,\"Mug, blue\",\"350 ml\r\n\"\"stoneware\"\"\"\r\nMUG-2,Cup,\n";
        let got = rows(file);
        assert_eq!(got.len(), 2);
        assert_eq!(field(&got[0], "sku"), "MUG-1");
        assert_eq!(field(&got[0], "name"), "Mug, blue");
        assert_eq!(field(&got[0], "description"), "350 ml\r\n\"stoneware\"");
        assert_eq!(field(&got[1], "name"), "Cup");
        // an empty cell is an absent field
        assert!(got[1].as_ref().unwrap().get("description").is_none());
    }

    #[test]
    fn dotted_columns_carry_v2_nested_fields() {
        let got = rows(b"sku,dimensions.length,dimensions.unit\nA,10,cm\n");
        assert_eq!(field(&got[0], "dimensions.length"), "10");
    }

    #[test]
    fn unreadable_files_end_with_an_error_that_names_the_row() {
        assert_eq!(rows(b""), vec![Err(FeedError::Empty)]);
        assert!(rows(b"sku,name\n").is_empty(), "a header alone is no rows");
        let short = rows(b"sku,name\nA,a\nB\nC,c\n");
        assert!(short[0].is_ok());
        assert!(
            matches!(short[1], Err(FeedError::Malformed { row: 2, .. })),
            "{short:?}"
        );
        assert_eq!(short.len(), 2, "nothing after the first error");
        let bad = rows(b"sku,name\nA,caf\xC3\nB,b\n");
        assert!(
            matches!(bad[0], Err(FeedError::BadUtf8 { row: 1 })),
            "{bad:?}"
        );
        let dup = rows(b"sku,name,sku\nA,a,B\n");
        assert!(
            matches!(dup[0], Err(FeedError::Malformed { row: 0, .. })),
            "{dup:?}"
        );
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
        let got: Vec<_> = Csv
            .rows(Box::new(OneByte(b"\xEF\xBB\xBFsku\nA\n")))
            .collect();
        assert_eq!(field(&got[0], "sku"), "A");
    }
}
