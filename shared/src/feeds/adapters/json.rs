//! JSON, versions 1 and 2: a top-level array of product objects, or an
//! object whose `products` member is that array (other members ignored).
//! The file is read through a window that slides over it; each product is
//! parsed in place from the window and handed over at once, so only one
//! product (and a chunk of the file) is ever held: serde JSON's
//! `StreamDeserializer` would not stream the elements of one array, and
//! its `Read`-based parser costs a call per byte. The structure around the
//! products (`[`, `,`, `]`, the wrapping object's members) is read here;
//! every value, serde JSON's slice parser reads.
//!
//! Nested objects are flattened with dots (`dimensions.length`); a number is
//! kept as the exact text the file wrote (`19.999999999999999` stays that,
//! and is then refused for its decimals: it never passes through a float);
//! `null` is an absent field; arrays are kept as JSON text (`extra`).
//! Anything else (not JSON, nesting deeper than serde JSON's 128 levels, a
//! product that is not an object, content after the document) makes the
//! file unreadable.

use super::{Adapter, ControlFlow, FeedError};
use crate::feeds::RawRow;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::io::Read;

pub struct Json;

impl Adapter for Json {
    fn read(
        &self,
        input: &mut dyn Read,
        each: &mut dyn FnMut(RawRow) -> ControlFlow<()>,
    ) -> Result<(), FeedError> {
        let mut doc = Window {
            input,
            buf: Vec::with_capacity(CHUNK),
            pos: 0,
            eof: false,
            rows: 0,
        };
        match doc.peek()? {
            None => return Err(FeedError::Empty),
            Some(b'[') => {
                doc.pos += 1;
                if doc.products(each)?.is_break() {
                    return Ok(());
                }
            }
            Some(b'{') => {
                doc.pos += 1;
                if doc.wrapped(each)?.is_break() {
                    return Ok(());
                }
            }
            Some(_) => {
                return Err(doc.malformed(
                    "expected an array of products, or an object with a products array",
                ));
            }
        }
        match doc.peek()? {
            None => Ok(()),
            Some(_) => Err(doc.malformed("trailing characters after the document")),
        }
    }
}

/// Bytes read at a time, and the least the window grows by.
const CHUNK: usize = 64 << 10;

/// The file as a window of bytes that slides over it: each value is parsed
/// from the window in place (serde JSON's slice reader, members borrowed
/// from it, nothing copied but what the row keeps), and the window grows
/// when a value runs past its end, up to [`super::MAX_ROW_BYTES`]. Parsing
/// from a `Read` instead costs a call per byte and a buffer per value: this
/// way is about half again as fast (docs/benchmarks.md).
struct Window<'r> {
    input: &'r mut dyn Read,
    buf: Vec<u8>,
    /// Where the unread part of `buf` begins.
    pos: usize,
    eof: bool,
    /// Products read so far.
    rows: u64,
}

/// A value parsed from the window: it, and the bytes it took.
type Parsed<R> = (Option<Result<R, serde_json::Error>>, usize);

impl Window<'_> {
    /// Reads at least [`CHUNK`] more, and at least as much again as is
    /// pending, so a long value is parsed again only a few times. `false`
    /// at the end of the file.
    fn fill(&mut self) -> Result<bool, FeedError> {
        if self.eof {
            return Ok(false);
        }
        self.buf.drain(..self.pos);
        self.pos = 0;
        // what is pending is one value, begun and not ended: past the
        // limit (give or take one chunk) it is the file's error
        let pending = self.buf.len();
        let most = super::MAX_ROW_BYTES + CHUNK;
        if pending >= most {
            return Err(FeedError::RowTooLarge {
                limit: super::MAX_ROW_BYTES,
            });
        }
        let want = (pending + CHUNK.max(pending)).min(most);
        self.buf.resize(want, 0);
        let mut filled = pending;
        while filled < want {
            match self.input.read(&mut self.buf[filled..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FeedError::from_io(&e)),
            }
        }
        self.buf.truncate(filled);
        Ok(filled > pending)
    }

    /// The next byte that is not whitespace, left unread; `None` at the end.
    fn peek(&mut self) -> Result<Option<u8>, FeedError> {
        loop {
            while let Some(&b) = self.buf.get(self.pos) {
                if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                    return Ok(Some(b));
                }
                self.pos += 1;
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Reads `want` as the next byte that is not whitespace.
    fn expect(&mut self, want: u8, what: &str) -> Result<(), FeedError> {
        match self.peek()? {
            Some(b) if b == want => {
                self.pos += 1;
                Ok(())
            }
            _ => Err(self.malformed(what)),
        }
    }

    /// The value at the window's start, through `parse`, which keeps what
    /// it needs: a value cut by the window's end is read again once the
    /// window holds more (a number, too, for it could go on). A cut value
    /// is not always an EOF error: serde JSON calls `12.` or `-` at the end
    /// of its slice an invalid number. So before the end of the file, an
    /// error is the file's only once it comes back at the same place in a
    /// grown window.
    fn value<R>(&mut self, parse: impl Fn(&[u8]) -> Parsed<R>) -> Result<R, FeedError> {
        let mut failed_at = None;
        loop {
            let window = &self.buf[self.pos..];
            let (next, used) = parse(window);
            match next {
                Some(Ok(kept)) if used < window.len() || self.eof => {
                    self.pos += used;
                    return Ok(kept);
                }
                Some(Err(e)) if self.eof => return Err(self.refused(&e)),
                Some(Err(e)) if !e.is_eof() => {
                    let at = (e.line(), e.column());
                    if failed_at == Some(at) {
                        return Err(self.refused(&e));
                    }
                    failed_at = Some(at);
                }
                None if self.eof => return Err(self.malformed("the document ends too soon")),
                _ => {}
            }
            if !self.fill()? && !self.eof {
                return Err(self.malformed("the document ends too soon"));
            }
        }
    }

    /// The elements of the products array, after its `[`.
    fn products(
        &mut self,
        each: &mut dyn FnMut(RawRow) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, FeedError> {
        if self.peek()? == Some(b']') {
            self.pos += 1;
            return Ok(ControlFlow::Continue(()));
        }
        loop {
            let row = self.value(|w| one(w, |Members(object)| row(object)))?;
            self.rows += 1;
            if each(row).is_break() {
                return Ok(ControlFlow::Break(()));
            }
            match self.peek()? {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(ControlFlow::Continue(()));
                }
                _ => return Err(self.malformed("expected `,` or `]` after a product")),
            }
        }
    }

    /// An object's members, after its `{`: `products` read, the others skipped.
    fn wrapped(
        &mut self,
        each: &mut dyn FnMut(RawRow) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, FeedError> {
        let mut found = false;
        if self.peek()? == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                let key = self.value(|w| one(w, |Key(k)| Ok(k.into_owned())))?;
                self.expect(b':', "expected `:` after a member's name")?;
                if key == "products" && !found {
                    found = true;
                    self.expect(b'[', "products must be an array")?;
                    if self.products(each)?.is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                } else {
                    self.value(|w| one(w, |IgnoredAny| Ok(())))?;
                }
                match self.peek()? {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.malformed("expected `,` or `}` after a member")),
                }
            }
        }
        if found {
            Ok(ControlFlow::Continue(()))
        } else {
            Err(self.malformed("the object has no products array"))
        }
    }

    fn malformed(&self, reason: &str) -> FeedError {
        FeedError::Malformed {
            row: self.rows + 1,
            reason: reason.into(),
        }
    }

    /// serde JSON's error, without its position (in the window, not the file).
    fn refused(&self, e: &serde_json::Error) -> FeedError {
        let text = e.to_string();
        let text = text
            .rsplit_once(" at line ")
            .map_or(text.as_str(), |(t, _)| t);
        // serde JSON's word for bytes that are not UTF-8 inside a string
        // (the category keeps a string value that says "unicode" out)
        if e.classify() == serde_json::error::Category::Syntax
            && text.starts_with("invalid unicode code point")
        {
            return FeedError::BadUtf8 { row: self.rows + 1 };
        }
        FeedError::Malformed {
            row: self.rows + 1,
            reason: crate::domain::text::printable(text, 200),
        }
    }
}

/// One value of type `T` at the start of `window`, borrowed from it and
/// turned by `keep` into what outlives it.
fn one<'a, T: serde::Deserialize<'a>, R>(
    window: &'a [u8],
    keep: impl FnOnce(T) -> Result<R, serde_json::Error>,
) -> Parsed<R> {
    let mut stream = serde_json::Deserializer::from_slice(window).into_iter::<T>();
    let next = stream.next().map(|r| r.and_then(keep));
    (next, stream.byte_offset())
}

/// A product's members as the row.
fn row(object: Object<'_>) -> Result<RawRow, serde_json::Error> {
    let mut row = RawRow::new();
    flatten("", object, &mut row, 0)?;
    Ok(row)
}

/// One product: each member's name and value as the exact text of the
/// file, borrowed from the window.
type Object<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

/// An object's members, in order, their values unparsed.
fn members(text: &str) -> Result<Object<'_>, serde_json::Error> {
    let members: Members = serde_json::from_str(text)?;
    Ok(members.0)
}

struct Members<'a>(Object<'a>);

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a product object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Members<'de>, M::Error> {
                // a product has a handful of fields: one allocation, mostly
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    if out.len() == super::MAX_ROW_FIELDS {
                        return Err(serde::de::Error::custom(format!(
                            "a product has more than {} fields",
                            super::MAX_ROW_FIELDS
                        )));
                    }
                    out.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A member's name: borrowed from the text unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member's name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Objects nested in a product this deep at most (`dimensions.length` is 1).
const MAX_DEPTH: usize = 8;

fn flatten(
    prefix: &str,
    object: Object<'_>,
    row: &mut RawRow,
    depth: usize,
) -> Result<(), serde_json::Error> {
    if depth > MAX_DEPTH {
        return Err(serde::de::Error::custom(format!(
            "objects nest deeper than {MAX_DEPTH} levels in a product"
        )));
    }
    for (key, value) in object {
        let name = if prefix.is_empty() {
            key.into_owned()
        } else {
            format!("{prefix}.{key}")
        };
        let text = value.get().trim();
        match text.as_bytes().first() {
            Some(b'n') => {}
            // most strings have no escapes: their text, unquoted, is the value
            Some(b'"') if !text.contains('\\') => {
                row.insert(name, text[1..text.len() - 1].to_owned());
            }
            Some(b'"') => {
                row.insert(name, serde_json::from_str::<String>(text)?);
            }
            Some(b'{') => flatten(&name, members(text)?, row, depth + 1)?,
            // numbers as written; booleans and arrays as JSON text
            _ => {
                row.insert(name, text.to_owned());
            }
        }
        if row.len() > super::MAX_ROW_FIELDS {
            return Err(serde::de::Error::custom(format!(
                "a product has more than {} fields",
                super::MAX_ROW_FIELDS
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::adapters::collect;

    #[test]
    fn an_array_or_an_object_with_products() {
        let array = collect(&Json, br#"[{"sku":"A","price":"12.99","quantity":4,"dimensions":{"length":10.5,"unit":"cm"},"tags":["x"],"gtin":null}]"#).unwrap();
        assert_eq!(array.len(), 1);
        let row = &array[0];
        assert_eq!(row["price"], "12.99");
        assert_eq!(row["quantity"], "4");
        assert_eq!(row["dimensions.length"], "10.5");
        assert_eq!(row["dimensions.unit"], "cm");
        assert_eq!(row["tags"], r#"["x"]"#);
        assert!(!row.contains_key("gtin"));
        let object = collect(
            &Json,
            br#"{"version":1,"products":[{"sku":"A"},{"sku":"B"}],"note":{}}"#,
        )
        .unwrap();
        assert_eq!(object.len(), 2);
        // a JSON number price reads as the decimal it wrote, not a float sum
        let number = collect(&Json, br#"[{"price":0.3}]"#).unwrap();
        assert_eq!(number[0]["price"], "0.3");
    }

    #[test]
    fn elements_are_handed_over_as_they_are_read_and_the_caller_may_stop() {
        let mut seen = Vec::new();
        let r = Json.read(
            &mut &br#"[{"sku":"A"},{"sku":"B"},{"sku":"C"}, oops"#[..],
            &mut |row| {
                seen.push(row["sku"].clone());
                if seen.len() == 2 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        assert_eq!(r, Ok(()));
        assert_eq!(seen, ["A", "B"]);
    }

    #[test]
    fn unreadable_documents_are_refused_with_the_row_they_broke_at() {
        assert_eq!(collect(&Json, b""), Err(FeedError::Empty));
        assert_eq!(collect(&Json, b"[]"), Ok(vec![]));
        for (bad, row) in [
            (&b"[{\"sku\":\"A\"}, {\"sku\":"[..], 2),
            (b"{\"items\":[]}", 1),
            (b"[1,2]", 1),
            (b"[{\"sku\":\"A\"}] trailing", 2),
            (b"not json", 1),
            (b"\"products\"", 1),
        ] {
            let got = collect(&Json, bad);
            assert!(
                matches!(got, Err(FeedError::Malformed { row: r, .. }) if r == row),
                "{:?}: {got:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            collect(&Json, b"[{\"sku\":\"caf\xC3\"}]"),
            Err(FeedError::BadUtf8 { .. })
        ));
    }

    #[test]
    fn numbers_keep_the_text_the_file_wrote() {
        let rows = collect(
            &Json,
            br#"[{"price": 19.999999999999999, "quantity": 1e3, "big": 123456789012345678901234567890, "ok": true}]"#,
        )
        .unwrap();
        assert_eq!(rows[0]["price"], "19.999999999999999");
        assert_eq!(rows[0]["quantity"], "1e3");
        assert_eq!(rows[0]["big"], "123456789012345678901234567890");
        assert_eq!(rows[0]["ok"], "true");
        let refused = crate::feeds::validate::row(
            "acme",
            1,
            &{
                let mut r = rows[0].clone();
                r.extend(
                    [
                        ("sku", "A"),
                        ("name", "A"),
                        ("currency", "EUR"),
                        ("category", "c"),
                    ]
                    .map(|(k, v)| (k.to_owned(), v.to_owned())),
                );
                r.insert("quantity".into(), "1".into());
                r
            },
            crate::feeds::FeedVersion::V1,
        );
        assert!(refused.unwrap_err().iter().any(|e| e.field == "price"));
    }

    #[test]
    fn values_cut_by_the_window_are_read_whole() {
        // a few hundred KB: numbers, escapes and multi-byte characters fall
        // on every side of the window's edges
        let expected: Vec<(String, String, String)> = (0..4000)
            .map(|i| {
                (
                    format!("S{i}"),
                    format!("{}.{:02}", i * 37, i % 100),
                    format!("é{}\"{i}", "🦀".repeat(i % 7)),
                )
            })
            .collect();
        let elements: Vec<String> = expected
            .iter()
            .enumerate()
            .map(|(i, (sku, price, name))| {
                let pad = " ".repeat(i % 5);
                format!(
                    r#"{pad}{{"sku":"{sku}",{pad}"price":{price},"name":{},"quantity":{i}}}"#,
                    serde_json::to_string(name).unwrap()
                )
            })
            .collect();
        let bare = format!("[{}]", elements.join(",\n"));
        let wrapped = format!(r#"{{"version":12345, "products": {bare} ,"n":1}}"#);
        for doc in [bare, wrapped] {
            let rows = collect(&Json, doc.as_bytes()).unwrap();
            assert_eq!(rows.len(), expected.len());
            for (i, (row, (sku, price, name))) in rows.iter().zip(&expected).enumerate() {
                assert_eq!(&row["sku"], sku);
                assert_eq!(&row["price"], price);
                assert_eq!(&row["name"], name);
                assert_eq!(row["quantity"], i.to_string());
            }
        }
    }

    #[test]
    fn a_number_at_the_windows_edge_is_not_taken_for_its_first_digits() {
        // `{"pad":"xx..x","version":` puts the number at CHUNK - 6
        let pad = "x".repeat(CHUNK - 6 - 8 - 12);
        let doc = format!(r#"{{"pad":"{pad}","version":123456789,"products":[{{"sku":"A"}}]}}"#);
        assert_eq!(doc.find("123456789"), Some(CHUNK - 6));
        assert_eq!(collect(&Json, doc.as_bytes()).unwrap()[0]["sku"], "A");
    }

    #[test]
    fn a_number_cut_anywhere_by_the_windows_edge_is_read_whole() {
        // `-12.5e+3` across the edge at every offset: serde JSON calls
        // `-`, `-12.` or `-12.5e+` at the end of its slice invalid numbers
        for k in 0..=9 {
            let head = r#"{"pad":""#;
            let mid = r#"","products":[{"sku":"A","price":"#;
            let pad = "x".repeat(CHUNK - k - head.len() - mid.len());
            let doc = format!(r#"{head}{pad}{mid}-12.5e+3,"quantity":-0.25}}]}}"#);
            assert_eq!(doc.find("-12.5e+3"), Some(CHUNK - k));
            let rows = collect(&Json, doc.as_bytes()).unwrap_or_else(|e| panic!("{k}: {e:?}"));
            assert_eq!(rows[0]["price"], "-12.5e+3", "{k}");
            assert_eq!(rows[0]["quantity"], "-0.25", "{k}");
        }
        // a real error is still one, at the same row
        let bad = format!(r#"[{{"sku":"{}"}},{{"price":12.x}}]"#, "x".repeat(CHUNK));
        assert!(matches!(
            collect(&Json, bad.as_bytes()),
            Err(FeedError::Malformed { row: 2, .. })
        ));
    }

    #[test]
    fn what_comes_before_the_products_is_not_the_first_products_weight() {
        let big = "x".repeat(super::super::MAX_ROW_BYTES / 2 + 1000);
        let doc = format!(r#"{{"note":"{big}","products":[{{"name":"{big}"}}]}}"#);
        assert_eq!(collect(&Json, doc.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn one_endless_product_is_refused_not_held() {
        let huge = format!(
            "[{{\"sku\":\"{}\"}}]",
            "x".repeat(super::super::MAX_ROW_BYTES + (128 << 10))
        );
        assert!(matches!(
            collect(&Json, huge.as_bytes()),
            Err(FeedError::RowTooLarge { .. })
        ));
        let wide: String = (0..=super::super::MAX_ROW_FIELDS)
            .map(|i| format!("\"f{i}\":1"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(matches!(
            collect(&Json, format!("[{{{wide}}}]").as_bytes()),
            Err(FeedError::Malformed { .. })
        ));
        // the limit is per product: many products of ordinary size read fine
        let many = format!(
            "[{}]",
            vec![r#"{"sku":"A","name":"a fine product"}"#; 200_000].join(",")
        );
        assert_eq!(collect(&Json, many.as_bytes()).unwrap().len(), 200_000);
    }

    #[test]
    fn a_nesting_bomb_is_refused_not_recursed() {
        let objects = format!("[{}1{}]", "{\"a\":".repeat(100_000), "}".repeat(100_000));
        assert!(matches!(
            collect(&Json, objects.as_bytes()),
            Err(FeedError::Malformed { .. })
        ));
        // an array is a field's JSON text: deep, but read without recursing
        let arrays = format!(
            "[{{\"a\":{}1{}}}]",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            collect(&Json, arrays.as_bytes()).unwrap()[0]["a"].len(),
            200_001
        );
    }
}
