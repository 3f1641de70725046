//! Partner API keys: `fc_<key_id>_<secret>`. Only a SHA-256 of the secret is
//! stored; the secret is 256 random bits from the OS, so a fast hash is
//! enough (ADR 0023: there is no guessable password for a slow hash to
//! protect).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A key with its secret. Neither `Debug` nor `==` can leak it: `Debug` shows
/// the key id only, and the only comparison is [`ApiKey::matches`], in
/// constant time.
#[derive(Clone)]
pub struct ApiKey {
    pub key_id: String,
    secret: String,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("key_id", &self.key_id)
            .field("secret", &"***")
            .finish()
    }
}

impl ApiKey {
    /// A new random key: a 64-bit id and a 256-bit secret, both from the
    /// OS's generator, in hex. Fails only if the OS has no randomness to give.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        getrandom::fill(&mut id)?;
        getrandom::fill(&mut secret)?;
        Ok(Self {
            key_id: hex::encode(id),
            secret: hex::encode(secret),
        })
    }

    /// Splits a presented key; `None` for anything not shaped like one.
    pub fn parse(presented: &str) -> Option<Self> {
        let rest = presented.strip_prefix("fc_")?;
        let (key_id, secret) = rest.split_once('_')?;
        let ok = |s: &str, max: usize| {
            !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric())
        };
        (ok(key_id, 64) && ok(secret, 128)).then(|| Self {
            key_id: key_id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// The whole key, to show once to its owner.
    pub fn reveal(&self) -> String {
        format!("fc_{}_{}", self.key_id, self.secret)
    }

    pub fn secret_hash(&self) -> String {
        hex::encode(Sha256::digest(self.secret.as_bytes()))
    }

    /// Whether this key's secret hashes to `stored_hash` (hex), compared in
    /// constant time so the time taken says nothing about how much matched.
    pub fn matches(&self, stored_hash: &str) -> bool {
        let ours = Sha256::digest(self.secret.as_bytes());
        match hex::decode(stored_hash) {
            Ok(theirs) => bool::from(ours.as_slice().ct_eq(&theirs)),
            Err(_) => false,
        }
    }
}

/// Why a presented key was refused. Every reason is the same 401 to the
/// caller, who learns nothing about which part was wrong; the audit record
/// names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    Missing,
    /// Not shaped `fc_<key_id>_<secret>`.
    Malformed,
    /// No key has that id.
    Unknown,
    /// The secret does not match the key's hash.
    Mismatch,
    Revoked,
}

impl KeyRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Unknown => "unknown_key_id",
            Self::Mismatch => "wrong_secret",
            Self::Revoked => "revoked",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back() {
        let k = ApiKey::generate().unwrap();
        let p = ApiKey::parse(&k.reveal()).unwrap();
        assert_eq!(p.key_id, k.key_id);
        assert!(p.matches(&k.secret_hash()));
        assert!(!ApiKey::generate().unwrap().matches(&k.secret_hash()));
        assert!(!p.matches("not hex"));
        assert_eq!(k.secret_hash().len(), 64);
        assert_ne!(ApiKey::generate().unwrap().reveal(), k.reveal());
        // fc_, 64 bits of id, _, 256 bits of secret, in hex
        assert_eq!(k.reveal().len(), 3 + 16 + 1 + 64);
    }

    #[test]
    fn a_key_never_prints_its_secret() {
        let k = ApiKey::generate().unwrap();
        let printed = format!("{k:?}");
        assert!(printed.contains(&k.key_id));
        assert!(!printed.contains(&k.reveal()[k.key_id.len() + 4..]));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        for bad in [
            "",
            "fc_",
            "fc_abc",
            "fc__secret",
            "xx_abc_def",
            "fc_abc_",
            "fc_a b_c",
            "fc_abc_d-e",
        ] {
            assert!(ApiKey::parse(bad).is_none(), "{bad}");
        }
    }
}
