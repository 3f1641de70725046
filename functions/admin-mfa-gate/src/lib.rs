//! admin-mfa-gate: the user pool's pre-token-generation trigger, which makes
//! MFA a condition of the admin group (ADR 0016).
//!
//! Cognito sets MFA per user pool, not per group, and shoppers sign in to the
//! same pool with MFA optional. With optional MFA, Cognito challenges every
//! user who has MFA enabled; so a token that carries the admin group is safe
//! exactly when its user has MFA enabled. This trigger runs before Cognito
//! issues tokens (sign-in and refresh) and withholds the admin group from a
//! member without MFA: their token is a shopper's, and admin-api answers 403
//! until they enrol. A shopper, in no admin group, costs no call.
//!
//! The event is read as JSON, not as a typed struct: a trigger source or a
//! field Cognito adds later must not fail every sign-in in the pool.

use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::config::timeout::TimeoutConfig;
use serde_json::{Value, json};
use shared::http::ADMIN_GROUP;
use std::time::Duration;

/// The only MFA the pool enables (template.yaml, `EnabledMfas`).
pub const REQUIRED_MFA: &str = "SOFTWARE_TOKEN_MFA";
/// Cognito waits 5 s for a trigger: the lookup gives up well before.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Deps {
    cognito: Client,
}

impl Deps {
    pub fn new(sdk: &shared::aws::SdkConfig) -> Self {
        let config = aws_sdk_cognitoidentityprovider::config::Builder::from(sdk)
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(LOOKUP_TIMEOUT)
                    .build(),
            )
            .build();
        Self {
            cognito: Client::from_conf(config),
        }
    }
}

/// What the trigger decides for one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not an admin: the token as Cognito would issue it, no call made.
    NotAdmin,
    /// An admin with MFA enabled: the token as Cognito would issue it.
    Admin,
    /// An admin without MFA: the token without the admin group.
    Withhold,
}

/// The rule, given the user's groups and their enabled MFA methods (`None`
/// when they were not looked up).
pub fn decide(groups: &[String], enabled_mfa: Option<&[String]>) -> Decision {
    if !groups.iter().any(|g| g == ADMIN_GROUP) {
        return Decision::NotAdmin;
    }
    match enabled_mfa {
        Some(methods) if methods.iter().any(|m| m == REQUIRED_MFA) => Decision::Admin,
        _ => Decision::Withhold,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The event names no user or pool, so the user cannot be looked up.
    #[error("the event names no user pool or user")]
    NoUser,
    /// Cognito could not say whether the admin has MFA. The sign-in fails
    /// (Cognito answers the client with the trigger's failure) and the admin
    /// retries: neither a token with the group unchecked nor a silent
    /// downgrade that looks like a permission bug.
    #[error("looking the admin up failed: {0}")]
    Lookup(String),
}

/// The groups Cognito is about to put in the token.
fn groups_of(event: &Value) -> Vec<String> {
    event
        .pointer("/request/groupConfiguration/groupsToOverride")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub async fn handle(deps: &Deps, mut event: Value) -> Result<Value, GateError> {
    let groups = groups_of(&event);
    if decide(&groups, None) == Decision::NotAdmin {
        return Ok(event);
    }
    let (Some(pool), Some(user)) = (event["userPoolId"].as_str(), event["userName"].as_str())
    else {
        return Err(GateError::NoUser);
    };
    let found = deps
        .cognito
        .admin_get_user()
        .user_pool_id(pool)
        .username(user)
        .send()
        .await
        .map_err(|e| {
            GateError::Lookup(
                aws_sdk_cognitoidentityprovider::error::DisplayErrorContext(e).to_string(),
            )
        })?;
    let enabled = found.user_mfa_setting_list().to_vec();
    if decide(&groups, Some(&enabled)) == Decision::Withhold {
        tracing::warn!(user = %user, "admin group withheld: the user has no MFA enabled");
        event["response"]["claimsOverrideDetails"] = without_admin(&event, &groups);
    }
    Ok(event)
}

/// The user's groups as they are, less the admin group; roles as they are
/// (the admin group has none: ADR 0016).
fn without_admin(event: &Value, groups: &[String]) -> Value {
    let current = event
        .pointer("/request/groupConfiguration")
        .cloned()
        .unwrap_or_default();
    let kept: Vec<&String> = groups.iter().filter(|g| *g != ADMIN_GROUP).collect();
    json!({
        "groupOverrideDetails": {
            "groupsToOverride": kept,
            "iamRolesToOverride": current.get("iamRolesToOverride").cloned().unwrap_or_else(|| json!([])),
            "preferredRole": current.get("preferredRole").cloned().unwrap_or(Value::Null),
        }
    })
}

impl From<GateError> for lambda_runtime::Diagnostic {
    fn from(e: GateError) -> Self {
        let error_type = match e {
            GateError::NoUser => "NoUser",
            GateError::Lookup(_) => "LookupFailed",
        };
        Self {
            error_type: error_type.to_owned(),
            error_message: e.to_string(),
        }
    }
}
