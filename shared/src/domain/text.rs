//! Checks shared by every free-text field and identifier.

use super::Invalid;

/// Free text: trimmed, 1..=max characters (or 0 when `allow_empty`), no control
/// characters except newline and tab in long text.
pub fn check_text(field: &str, value: &str, max: usize, allow_empty: bool) -> Result<(), Invalid> {
    let chars = value.chars().count();
    if !allow_empty && value.trim().is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if chars > max {
        return Err(Invalid::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    Ok(())
}

/// Identifiers (SKUs, sale ids, categories): 1..=max of `A-Z a-z 0-9 . _ -`,
/// starting with a letter or digit. Keeps keys, URLs and logs unambiguous.
pub fn check_id(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!(
                "must be 1 to {max} characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
            ),
        ))
    }
}

/// Control characters, and the invisible ones that move or hide text: line
/// and paragraph separators, zero-width characters, bidirectional overrides
/// and isolates (a U+202E can make a log line read backwards).
fn unsafe_to_show(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// `value` made safe to record and show: control characters (newlines, ANSI
/// escapes) become U+FFFD, and it is cut to `max` characters with a trailing
/// `…`. For text an attacker chooses that lands in a log or the audit trail.
pub fn printable(value: &str, max: usize) -> String {
    let mut out: String = value
        .chars()
        .take(max)
        .map(|c| if unsafe_to_show(c) { '\u{FFFD}' } else { c })
        .collect();
    if value.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules() {
        assert!(check_text("name", "Blue mug", 10, false).is_ok());
        assert!(check_text("name", "  ", 10, false).is_err());
        assert!(check_text("name", "", 10, true).is_ok());
        assert!(check_text("name", "ééééééééééé", 10, false).is_err());
        assert!(check_text("name", "ok\u{0}", 10, false).is_err());
        assert!(check_text("d", "line\nline\ttab", 20, false).is_ok());
        assert!(check_text("d", "bell\u{7}", 20, false).is_err());
    }

    #[test]
    fn printable_text_has_no_control_characters_and_a_bound() {
        assert_eq!(printable("MUG-1", 10), "MUG-1");
        assert_eq!(
            printable("x\nallowed PUT admin\u{1b}[2J", 100),
            "x\u{FFFD}allowed PUT admin\u{FFFD}[2J"
        );
        assert_eq!(printable(&"a".repeat(50), 8), "aaaaaaaa…");
        assert_eq!(
            printable("a\u{2028}b\u{202E}c\u{200B}", 10),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}"
        );
        assert_eq!(printable("ééé", 2), "éé…");
    }

    #[test]
    fn id_rules() {
        for good in ["MUG-1", "a", "sku_2.b", "9lives"] {
            assert!(check_id("sku", good, 64).is_ok(), "{good}");
        }
        for bad in ["", "-lead", "has space", "p1:sku", "ünï", "a/b", "x#y"] {
            assert!(check_id("sku", bad, 64).is_err(), "{bad}");
        }
        assert!(check_id("sku", &"a".repeat(65), 64).is_err());
    }
}
