//! admin-mfa-gate, Cognito's pre-token-generation trigger (ADR 0016): the
//! rule, then the handler on Cognito's own event shape against the emulator's
//! Cognito, where each user's MFA is really enabled or not.

use admin_mfa_gate::{Decision, Deps, REQUIRED_MFA, decide, handle};
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::types::{AuthFlowType, SoftwareTokenMfaSettingsType};
use serde_json::{Value, json};

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn the_admin_group_needs_totp_and_nothing_else_does() {
    let totp = strings(&[REQUIRED_MFA]);
    let sms = strings(&["SMS_MFA"]);
    assert_eq!(decide(&strings(&[]), None), Decision::NotAdmin);
    assert_eq!(decide(&strings(&["ops"]), Some(&[])), Decision::NotAdmin);
    assert_eq!(
        decide(&strings(&["ops", "admin"]), Some(&totp)),
        Decision::Admin
    );
    assert_eq!(decide(&strings(&["admin"]), Some(&[])), Decision::Withhold);
    // the pool enables TOTP only; anything else is not the MFA it challenges for
    assert_eq!(decide(&strings(&["admin"]), Some(&sms)), Decision::Withhold);
    // not looked up is not enabled
    assert_eq!(decide(&strings(&["admin"]), None), Decision::Withhold);
    // group names are exact
    assert_eq!(
        decide(&strings(&["Admin", "admins"]), None),
        Decision::NotAdmin
    );
}

/// The event as Cognito sends it (V1, sign-in).
fn event(pool: &str, user: &str, groups: &[&str]) -> Value {
    event_from("TokenGeneration_Authentication", pool, user, groups)
}

fn event_from(source: &str, pool: &str, user: &str, groups: &[&str]) -> Value {
    json!({
        "version": "1",
        "triggerSource": source,
        "region": "us-east-1",
        "userPoolId": pool,
        "userName": user,
        "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "client"},
        "request": {
            "userAttributes": {"sub": "3f1c0d52-1111-2222-3333-444455556666", "email": user},
            "groupConfiguration": {
                "groupsToOverride": groups,
                "iamRolesToOverride": ["arn:aws:iam::123456789012:role/ops"],
                "preferredRole": null
            }
        },
        "response": {"claimsOverrideDetails": null}
    })
}

struct Pool {
    client: Client,
    id: String,
    app: String,
}

impl Pool {
    async fn new(sdk: &aws_config::SdkConfig) -> Self {
        let client = Client::new(sdk);
        let name = format!("mfa-gate-{}", uuid::Uuid::new_v4());
        let pool = client
            .create_user_pool()
            .pool_name(name)
            .send()
            .await
            .unwrap();
        let id = pool.user_pool().unwrap().id().unwrap().to_owned();
        let app = client
            .create_user_pool_client()
            .user_pool_id(&id)
            .client_name("gate-test")
            .explicit_auth_flows(aws_sdk_cognitoidentityprovider::types::ExplicitAuthFlowsType::AllowAdminUserPasswordAuth)
            .send()
            .await
            .unwrap()
            .user_pool_client()
            .unwrap()
            .client_id()
            .unwrap()
            .to_owned();
        client
            .create_group()
            .user_pool_id(&id)
            .group_name("admin")
            .send()
            .await
            .unwrap();
        Self { client, id, app }
    }

    async fn user(&self, name: &str, admin: bool) {
        self.client
            .admin_create_user()
            .user_pool_id(&self.id)
            .username(name)
            .send()
            .await
            .unwrap();
        self.client
            .admin_set_user_password()
            .user_pool_id(&self.id)
            .username(name)
            .password("correct horse battery staple 1A!")
            .permanent(true)
            .send()
            .await
            .unwrap();
        if admin {
            self.client
                .admin_add_user_to_group()
                .user_pool_id(&self.id)
                .username(name)
                .group_name("admin")
                .send()
                .await
                .unwrap();
        }
    }

    /// What a user does in the console: sign in, register an authenticator
    /// app, prove a code, turn TOTP on.
    async fn enrol_totp(&self, name: &str) {
        let auth = self
            .client
            .admin_initiate_auth()
            .user_pool_id(&self.id)
            .client_id(&self.app)
            .auth_flow(AuthFlowType::AdminUserPasswordAuth)
            .auth_parameters("USERNAME", name)
            .auth_parameters("PASSWORD", "correct horse battery staple 1A!")
            .send()
            .await
            .unwrap();
        let token = auth
            .authentication_result()
            .unwrap()
            .access_token()
            .unwrap()
            .to_owned();
        self.client
            .associate_software_token()
            .access_token(&token)
            .send()
            .await
            .unwrap();
        self.client
            .verify_software_token()
            .access_token(&token)
            .user_code("123456")
            .send()
            .await
            .unwrap();
        self.client
            .admin_set_user_mfa_preference()
            .user_pool_id(&self.id)
            .username(name)
            .software_token_mfa_settings(
                SoftwareTokenMfaSettingsType::builder()
                    .enabled(true)
                    .preferred_mfa(true)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let (client, id) = (self.client.clone(), self.id.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                let _ = rt.block_on(client.delete_user_pool().user_pool_id(id).send());
            }
        })
        .join();
    }
}

/// The groups the token gets when the trigger overrode them.
fn groups_issued(e: &Value) -> Option<Vec<String>> {
    let details = &e["response"]["claimsOverrideDetails"];
    if details.is_null() {
        return None;
    }
    Some(
        serde_json::from_value(details["groupOverrideDetails"]["groupsToOverride"].clone())
            .unwrap(),
    )
}

#[tokio::test]
async fn an_admin_without_totp_gets_a_token_without_the_admin_group() {
    let sdk = flashcart_local::sdk_config(false).await.unwrap();
    let pool = Pool::new(&sdk).await;
    let deps = Deps::new(&sdk);
    pool.user("enrolled@example.com", true).await;
    pool.user("careless@example.com", true).await;
    pool.enrol_totp("enrolled@example.com").await;

    // enrolled: the token as Cognito would issue it, admin group included
    let out = handle(&deps, event(&pool.id, "enrolled@example.com", &["admin"]))
        .await
        .unwrap();
    assert_eq!(groups_issued(&out), None);

    // not enrolled: every other group and role kept, the admin group withheld
    let out = handle(
        &deps,
        event(&pool.id, "careless@example.com", &["ops", "admin"]),
    )
    .await
    .unwrap();
    assert_eq!(groups_issued(&out), Some(strings(&["ops"])));

    // enrolling is enough: the next sign-in's token carries the group
    pool.enrol_totp("careless@example.com").await;
    let out = handle(
        &deps,
        event(&pool.id, "careless@example.com", &["ops", "admin"]),
    )
    .await
    .unwrap();
    assert_eq!(groups_issued(&out), None);
}

#[tokio::test]
async fn a_shopper_costs_no_lookup_and_a_failed_lookup_fails_the_sign_in() {
    let sdk = flashcart_local::sdk_config(false).await.unwrap();
    let deps = Deps::new(&sdk);
    // no such pool: a shopper's token is issued without a call, so this works
    let out = handle(
        &deps,
        event("us-east-1_nosuchpool", "shopper@example.com", &[]),
    )
    .await
    .unwrap();
    assert_eq!(groups_issued(&out), None);
    // an admin's lookup fails: the sign-in fails rather than guess
    let err = handle(
        &deps,
        event("us-east-1_nosuchpool", "admin@example.com", &["admin"]),
    )
    .await;
    assert!(
        matches!(err, Err(admin_mfa_gate::GateError::Lookup(_))),
        "{err:?}"
    );
}
