//! XML, versions 1 and 2: a `<products>` root holding one `<product>` element
//! per row, each field a child element (`<sku>MUG-1</sku>`); nested elements
//! are flattened with dots (`<dimensions><length>` is `dimensions.length`).
//! Attributes, comments and processing instructions are ignored.
//!
//! Any DOCTYPE makes the file unreadable as soon as it is met, before a row
//! is handed over: quick-xml never expands a DTD's entities, and a feed has
//! no use for one, so the billion-laughs family ends there. The predefined
//! entities (`&amp;` ...) and character references are resolved; any other
//! entity is an error. One product may not take more than
//! [`super::MAX_ROW_BYTES`] of the file, so one endless text node cannot hold
//! the whole file in memory.

use super::{Adapter, ControlFlow, FeedError};
use crate::feeds::RawRow;
use quick_xml::events::Event;
use std::io::{BufReader, Read};

pub struct Xml;

/// Nesting below `<product>`: `dimensions.length` is 2.
const MAX_DEPTH: usize = 4;

impl Adapter for Xml {
    fn read(
        &self,
        input: &mut dyn Read,
        each: &mut dyn FnMut(RawRow) -> ControlFlow<()>,
    ) -> Result<(), FeedError> {
        let (input, start) = super::RowBytes::new(input);
        let mut reader = quick_xml::Reader::from_reader(BufReader::new(input));
        let mut buf = Vec::new();
        let mut rows = 0u64;
        // the open fields inside a product, each with whether it holds fields
        let mut path: Vec<(String, bool)> = Vec::new();
        let mut row: Option<RawRow> = None;
        let mut text = String::new();
        let mut root = false;
        let mut anything = false;
        loop {
            let at = rows + 1;
            buf.clear();
            let event = reader.read_event_into(&mut buf).map_err(|e| error(e, at))?;
            let fail = |reason: String| FeedError::Malformed { row: at, reason };
            match event {
                Event::DocType(_) => return Err(fail("a DOCTYPE is not allowed in a feed".into())),
                Event::Eof if !anything => return Err(FeedError::Empty),
                Event::Eof if root || row.is_some() => {
                    return Err(fail("the document ends inside an element".into()));
                }
                Event::Eof => return Err(fail("there is no <products> root".into())),
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => anything = true,
                Event::Start(element) => {
                    anything = true;
                    let name = element.local_name().as_ref().to_owned();
                    if !root {
                        if name != "products" {
                            return Err(fail(format!(
                                "the root element must be <products>, not <{}>",
                                short(&name)
                            )));
                        }
                        root = true;
                    } else if row.is_none() {
                        if name != "product" {
                            return Err(fail(format!(
                                "<products> may hold only <product>, not <{}>",
                                short(&name)
                            )));
                        }
                        row = Some(RawRow::new());
                    } else {
                        if path.len() == MAX_DEPTH {
                            return Err(fail(format!(
                                "fields nest deeper than {MAX_DEPTH} levels"
                            )));
                        }
                        if let Some((parent, holds)) = path.last_mut() {
                            if !text.trim().is_empty() {
                                return Err(fail(format!(
                                    "<{}> mixes text and elements",
                                    short(parent)
                                )));
                            }
                            *holds = true;
                        }
                        text.clear();
                        path.push((name, false));
                    }
                }
                Event::Empty(element) => {
                    anything = true;
                    let name = element.local_name().as_ref().to_owned();
                    match (&mut row, root) {
                        // `<products/>`: a feed with no rows
                        (None, false) if name == "products" => {
                            return finish(&mut reader, &mut buf, at);
                        }
                        (None, true) if name == "product" => {
                            rows += 1;
                            if each(RawRow::new()).is_break() {
                                return Ok(());
                            }
                            start.next_row();
                        }
                        // `<gtin/>`: the field is absent, like JSON's null
                        (Some(_), _) => {}
                        _ => return Err(fail(format!("<{}> is not expected here", short(&name)))),
                    }
                }
                Event::Text(t) => append(&mut text, &t.xml10_content(), &path, &fail)?,
                Event::CData(c) => {
                    append(&mut text, &c.xml10_content(), &path, &fail)?;
                }
                Event::GeneralRef(r) => {
                    let resolved = match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        Ok(None) => match quick_xml::escape::resolve_predefined_entity(&r) {
                            Some(s) => s.to_owned(),
                            None => {
                                return Err(fail(format!(
                                    "the entity &{}; is not defined",
                                    short(&r)
                                )));
                            }
                        },
                        Err(e) => return Err(fail(e.to_string())),
                    };
                    append(&mut text, &resolved, &path, &fail)?;
                }
                Event::End(_) => match (path.pop(), row.as_mut()) {
                    (Some((field, holds)), Some(fields)) => {
                        let value = std::mem::take(&mut text);
                        let value = value.trim();
                        if holds {
                            if !value.is_empty() {
                                return Err(fail(format!(
                                    "<{}> mixes text and elements",
                                    short(&field)
                                )));
                            }
                            continue;
                        }
                        let mut name = String::new();
                        for (parent, _) in &path {
                            name.push_str(parent);
                            name.push('.');
                        }
                        name.push_str(&field);
                        if fields.len() == super::MAX_ROW_FIELDS {
                            return Err(FeedError::RowTooLarge {
                                limit: super::MAX_ROW_BYTES,
                            });
                        }
                        if fields.contains_key(&name) {
                            return Err(fail(format!("the field {} is given twice", short(&name))));
                        }
                        if !value.is_empty() {
                            fields.insert(name, value.to_owned());
                        }
                    }
                    (None, Some(_)) => {
                        rows += 1;
                        let Some(done) = row.take() else { continue };
                        if each(done).is_break() {
                            return Ok(());
                        }
                        start.next_row();
                    }
                    // the root closes: nothing may follow but comments
                    (_, None) => return finish(&mut reader, &mut buf, at),
                },
            }
        }
    }
}

/// Text belongs inside a field: between products it must be blank.
fn append(
    text: &mut String,
    s: &str,
    path: &[(String, bool)],
    fail: &dyn Fn(String) -> FeedError,
) -> Result<(), FeedError> {
    if path.is_empty() {
        if s.trim().is_empty() {
            return Ok(());
        }
        return Err(fail("text outside a field".into()));
    }
    text.push_str(s);
    Ok(())
}

/// After the root: only comments, processing instructions and blanks.
fn finish<R: std::io::BufRead>(
    reader: &mut quick_xml::Reader<R>,
    buf: &mut Vec<u8>,
    row: u64,
) -> Result<(), FeedError> {
    loop {
        buf.clear();
        match reader.read_event_into(buf).map_err(|e| error(e, row))? {
            Event::Eof => return Ok(()),
            Event::Comment(_) | Event::PI(_) => {}
            Event::Text(t) if t.trim().is_empty() => {}
            _ => {
                return Err(FeedError::Malformed {
                    row,
                    reason: "content after the </products> root".into(),
                });
            }
        }
    }
}

fn short(s: &str) -> String {
    crate::domain::text::printable(s, 50)
}

fn error(e: quick_xml::Error, row: u64) -> FeedError {
    match e {
        quick_xml::Error::Encoding(_) => FeedError::BadUtf8 { row },
        quick_xml::Error::Io(io) => FeedError::from_io(&io),
        other => FeedError::Malformed {
            row,
            reason: crate::domain::text::printable(&other.to_string(), 200),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::adapters::collect;

    #[test]
    fn products_with_nested_fields_entities_and_cdata() {
        let rows = collect(
            &Xml,
            br#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a partner's feed -->
<products>
  <product>
    <sku>MUG-1</sku><name>Mug &amp; saucer &#x2014; blue</name>
    <price>12.99</price><gtin/>
    <description><![CDATA[<b>bold</b> claims]]></description>
    <dimensions unit-ignored="x"><length>10.5</length><unit>cm</unit></dimensions>
  </product>
  <product/>
</products>
"#,
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        let row = &rows[0];
        assert_eq!(row["sku"], "MUG-1");
        assert_eq!(row["name"], "Mug & saucer \u{2014} blue");
        assert_eq!(row["price"], "12.99");
        assert_eq!(row["description"], "<b>bold</b> claims");
        assert_eq!(row["dimensions.length"], "10.5");
        assert_eq!(row["dimensions.unit"], "cm");
        assert!(!row.contains_key("gtin"));
        assert!(rows[1].is_empty());
        assert_eq!(collect(&Xml, b"<products/>"), Ok(vec![]));
        assert_eq!(collect(&Xml, b"<products>\r\n</products>"), Ok(vec![]));
    }

    #[test]
    fn any_doctype_is_refused_before_a_row_is_handed_over() {
        let laughs = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;">]>
<products><product><name>&lol1;</name></product></products>"#;
        let mut handed = 0;
        let got = Xml.read(&mut &laughs[..], &mut |_| {
            handed += 1;
            ControlFlow::Continue(())
        });
        assert!(
            matches!(got, Err(FeedError::Malformed { ref reason, .. }) if reason.contains("DOCTYPE")),
            "{got:?}"
        );
        assert_eq!(handed, 0);
        // an external entity, and an undefined one without any DTD
        assert!(
            collect(
                &Xml,
                br#"<!DOCTYPE p SYSTEM "file:///etc/passwd"><products/>"#
            )
            .is_err()
        );
        assert!(matches!(
            collect(&Xml, b"<products><product><name>&lol;</name></product></products>"),
            Err(FeedError::Malformed { ref reason, .. }) if reason.contains("not defined")
        ));
    }

    #[test]
    fn unreadable_documents_are_refused_with_the_row_they_broke_at() {
        assert_eq!(collect(&Xml, b""), Err(FeedError::Empty));
        assert_eq!(collect(&Xml, b"  \n"), Err(FeedError::Empty));
        for (bad, row) in [
            (
                &b"<products><product><sku>A</sku></product><product><sku>B"[..],
                2,
            ),
            (b"<catalog/>", 1),
            (b"<products><item/></products>", 1),
            (
                b"<products><product><sku>A</sku><sku>B</sku></product></products>",
                1,
            ),
            (
                b"<products><product><sku>A</sku></product></products><products/>",
                2,
            ),
            (b"<products><product><sku>A</name></product></products>", 1),
            (b"<products>loose text</products>", 1),
            (
                b"<products><product><a><b><c><d><e>1</e></d></c></b></a></product></products>",
                1,
            ),
        ] {
            let got = collect(&Xml, bad);
            assert!(
                matches!(got, Err(FeedError::Malformed { row: r, .. }) if r == row),
                "{:?}: {got:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            collect(
                &Xml,
                b"<products><product><name>caf\xC3</name></product></products>"
            ),
            Err(FeedError::BadUtf8 { row: 1 })
        ));
    }

    #[test]
    fn a_long_field_is_read_and_an_endless_one_is_refused() {
        let long = format!(
            "<products><product><name>{}</name></product></products>",
            "x".repeat(1_000_000)
        );
        assert_eq!(
            collect(&Xml, long.as_bytes()).unwrap()[0]["name"].len(),
            1_000_000
        );
        let endless = format!(
            "<products><product><name>{}",
            "x".repeat(super::super::MAX_ROW_BYTES + (128 << 10))
        );
        assert!(matches!(
            collect(&Xml, endless.as_bytes()),
            Err(FeedError::RowTooLarge { .. })
        ));
    }

    #[test]
    fn empty_products_each_weigh_only_themselves() {
        let many = format!(
            "<products>{}</products>",
            "<product/>\n".repeat(super::super::MAX_ROW_BYTES / 5)
        );
        assert_eq!(
            collect(&Xml, many.as_bytes()).unwrap().len(),
            super::super::MAX_ROW_BYTES / 5
        );
    }
}
