//! A new partner, as an admin asks for it (`POST /admin/partners`).

use super::Invalid;
use super::text::{check_id, check_text};
use crate::feeds::import::Validation;
use serde::Deserialize;

pub const MAX_NAME: usize = 100;
/// A partner id is the first part of its products' SKUs and of its keys in
/// the feeds bucket: short, and an identifier.
pub const MAX_PARTNER_ID: usize = 40;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPartner {
    pub name: String,
    /// Chosen by the admin, or made from the name and a random suffix.
    #[serde(default)]
    pub partner_id: Option<String>,
    /// The version of a drop that names none (1 or 2; default 1).
    #[serde(default)]
    pub feed_version: Option<u8>,
    /// The mode of a drop that names none (default lenient).
    #[serde(default)]
    pub validation: Option<Validation>,
}

impl NewPartner {
    pub fn validate(&self) -> Result<(), Invalid> {
        check_text("name", &self.name, MAX_NAME, false)?;
        if let Some(id) = &self.partner_id {
            check_id("partner_id", id, MAX_PARTNER_ID)?;
        }
        if !matches!(self.feed_version, None | Some(1 | 2)) {
            return Err(Invalid::new("feed_version", "must be 1 or 2"));
        }
        Ok(())
    }

    /// The partner id: the admin's, or the name's letters and digits
    /// (`Acme Outdoor GmbH` -> `acme-outdoor-gmbh`) and `suffix`.
    pub fn partner_id(&self, suffix: &str) -> String {
        if let Some(id) = &self.partner_id {
            return id.clone();
        }
        let mut slug = String::new();
        for c in self.name.trim().chars() {
            if c.is_ascii_alphanumeric() {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        slug.truncate(MAX_PARTNER_ID - suffix.len() - 1);
        let slug = slug.trim_end_matches('-');
        let slug = if slug.is_empty() { "partner" } else { slug };
        format!("{slug}-{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> NewPartner {
        NewPartner {
            name: name.into(),
            partner_id: None,
            feed_version: None,
            validation: None,
        }
    }

    #[test]
    fn an_id_is_made_from_the_name_and_is_always_an_identifier() {
        assert_eq!(
            named("Acme Outdoor GmbH").partner_id("a1b2c3"),
            "acme-outdoor-gmbh-a1b2c3"
        );
        assert_eq!(named("  ☃☃ ").partner_id("a1b2c3"), "partner-a1b2c3");
        assert_eq!(named("Ünïcode & Co.").partner_id("x"), "n-code-co-x");
        for name in ["Acme", "-=+@", &"long name ".repeat(20), "a..b"] {
            let id = named(name).partner_id("a1b2c3");
            assert!(check_id("partner_id", &id, MAX_PARTNER_ID).is_ok(), "{id}");
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut p = named(" ");
        assert_eq!(p.validate().unwrap_err().field, "name");
        p = named("Acme");
        p.partner_id = Some("acme:evil".into());
        assert_eq!(p.validate().unwrap_err().field, "partner_id");
        p = named("Acme");
        p.feed_version = Some(3);
        assert_eq!(p.validate().unwrap_err().field, "feed_version");
    }
}
