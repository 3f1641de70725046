//! Partners' fetch credentials in AWS Secrets Manager (ADR 0025): one secret
//! per partner, named `<prefix><partner_id>` under `flashcart/partners/`, so
//! IAM can grant the fetcher reading and the partner API writing that path
//! and nothing else. The value never reaches DynamoDB, a log line or an
//! answer: it comes back as a [`Secret`], whose `Debug` hides it.

use crate::config::{ExposeSecret, Secret};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;

#[derive(Debug, thiserror::Error)]
#[error("Secrets Manager {op} failed: {message}")]
pub struct SecretError {
    op: &'static str,
    message: String,
}

fn failed<E: std::error::Error + 'static, R: std::fmt::Debug>(
    op: &'static str,
) -> impl Fn(aws_sdk_secretsmanager::error::SdkError<E, R>) -> SecretError {
    // the SDK's messages name the secret's id, never its value
    move |e| SecretError {
        op,
        message: DisplayErrorContext(e).to_string(),
    }
}

#[derive(Clone, Debug)]
pub struct SecretStore {
    client: Client,
    prefix: String,
}

impl SecretStore {
    /// `prefix` ends in `/`: `flashcart/partners/<stack>/`.
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
        }
    }

    fn name(&self, partner_id: &str) -> String {
        format!("{}{partner_id}", self.prefix)
    }

    /// Sets the partner's secret: a new secret, or a new version of it.
    pub async fn put(&self, partner_id: &str, value: &Secret) -> Result<(), SecretError> {
        let name = self.name(partner_id);
        let updated = self
            .client
            .put_secret_value()
            .secret_id(&name)
            .secret_string(value.expose_secret())
            .send()
            .await;
        match updated {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) =>
            {
                self.client
                    .create_secret()
                    .name(&name)
                    .description("A partner's feed endpoint credential (Flashcart, ADR 0025)")
                    .secret_string(value.expose_secret())
                    .send()
                    .await
                    .map_err(failed("CreateSecret"))?;
                Ok(())
            }
            Err(e) => Err(failed("PutSecretValue")(e)),
        }
    }

    /// The partner's secret, `None` if it has none.
    pub async fn get(&self, partner_id: &str) -> Result<Option<Secret>, SecretError> {
        match self
            .client
            .get_secret_value()
            .secret_id(self.name(partner_id))
            .send()
            .await
        {
            Ok(out) => Ok(out.secret_string.map(Secret::from)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(failed("GetSecretValue")(e)),
        }
    }

    /// Removes the partner's secret at once (no recovery window: a profile
    /// deleted or switched to no auth must not keep a credential around).
    pub async fn delete(&self, partner_id: &str) -> Result<(), SecretError> {
        match self
            .client
            .delete_secret()
            .secret_id(self.name(partner_id))
            .force_delete_without_recovery(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(failed("DeleteSecret")(e)),
        }
    }
}
