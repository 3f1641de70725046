//! The local stand-in for API Gateway's JWT authorizer: HS256 tokens signed
//! with a local secret (Cognito signs RS256 on AWS; the handlers see the same
//! claims either way).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use shared::config::{ExposeSecret, Secret};

/// The default local signing secret: 35 bytes, since RFC 7518 wants at least
/// 32 for HS256. Local only; `LOCAL_JWT_SECRET` overrides it.
pub const DEFAULT_SECRET: &str = "flashcart-local-only-signing-secret";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    #[serde(
        rename = "cognito:groups",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub groups: Vec<String>,
    pub exp: u64,
    #[serde(default)]
    pub iat: u64,
}

impl Claims {
    /// The claims as API Gateway hands them to a function: every value a
    /// string, arrays flattened to `"[a b]"`.
    pub fn as_authorizer_claims(&self) -> std::collections::HashMap<String, String> {
        let mut m = std::collections::HashMap::new();
        m.insert("sub".into(), self.sub.clone());
        m.insert("exp".into(), self.exp.to_string());
        m.insert("iat".into(), self.iat.to_string());
        if !self.groups.is_empty() {
            m.insert(
                "cognito:groups".into(),
                format!("[{}]", self.groups.join(" ")),
            );
        }
        m
    }
}

pub fn secret_from_env() -> Secret {
    Secret::from(std::env::var("LOCAL_JWT_SECRET").unwrap_or_else(|_| DEFAULT_SECRET.to_owned()))
}

pub fn mint(
    secret: &Secret,
    sub: &str,
    groups: &[String],
    ttl_secs: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    let claims = Claims {
        sub: sub.to_owned(),
        groups: groups.to_vec(),
        exp: now + ttl_secs,
        iat: now,
    };
    encode(secret, &claims)
}

/// Signs any claims, expired ones included (tests need those).
pub fn encode(secret: &Secret, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )
}

/// Verifies signature, algorithm (HS256 only: no `none`, no key confusion)
/// and expiry.
pub fn verify(secret: &Secret, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 5;
    validation.set_required_spec_claims(&["exp", "sub"]);
    jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.expose_secret().as_bytes()),
        &validation,
    )
    .map(|d| d.claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_verifies_and_carries_its_groups() {
        let s = Secret::from(DEFAULT_SECRET);
        let t = mint(&s, "alice", &["admin".into()], 60).unwrap();
        let c = verify(&s, &t).unwrap();
        assert_eq!(c.sub, "alice");
        assert_eq!(c.as_authorizer_claims()["cognito:groups"], "[admin]");
    }

    #[test]
    fn forged_expired_and_unsigned_tokens_fail() {
        let s = Secret::from(DEFAULT_SECRET);
        let other = Secret::from("another-secret-that-is-long-enough-x");
        assert!(verify(&s, &mint(&other, "mallory", &[], 60).unwrap()).is_err());
        let now = chrono::Utc::now().timestamp() as u64;
        let expired = encode(
            &s,
            &Claims {
                sub: "a".into(),
                groups: vec![],
                exp: now - 60,
                iat: now - 120,
            },
        )
        .unwrap();
        assert!(verify(&s, &expired).is_err());
        // alg "none": header {"alg":"none","typ":"JWT"}
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhIiwiZXhwIjo5OTk5OTk5OTk5fQ.";
        assert!(verify(&s, none).is_err());
        assert!(verify(&s, "not a token").is_err());
    }
}
