//! Creates every table, queue, bucket and bucket notification that
//! template.yaml declares, on whatever endpoint the SDK is pointed at, with
//! physical names `<prefix>-<LogicalId>`. Tests use a random prefix each, so
//! they run in parallel and remove what they made.

use crate::template::{Resolved, Resolver, Template, TemplateError, resolve};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_yaml_ng::Value;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{resource}: {message}")]
    Aws { resource: String, message: String },
}

fn aws_err<E: std::error::Error + 'static, R: std::fmt::Debug>(
    resource: &str,
) -> impl FnOnce(aws_sdk_dynamodb::error::SdkError<E, R>) -> BootstrapError + '_ {
    move |e| BootstrapError::Aws {
        resource: resource.to_owned(),
        message: aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
    }
}

#[derive(Debug, Clone)]
pub struct Queue {
    pub name: String,
    pub url: String,
    pub arn: String,
}

/// The local deployment of the template: what each logical id became.
#[derive(Debug, Clone)]
pub struct Stack {
    pub prefix: String,
    pub region: String,
    pub account: String,
    pub tables: BTreeMap<String, String>,
    pub queues: BTreeMap<String, Queue>,
    pub buckets: BTreeMap<String, String>,
    pub parameters: HashMap<String, Resolved>,
}

impl Stack {
    fn physical(&self, logical: &str) -> String {
        format!("{}-{logical}", self.prefix)
    }

    pub fn table(&self, logical: &str) -> &str {
        self.tables.get(logical).map_or("", String::as_str)
    }

    pub fn queue(&self, logical: &str) -> Option<&Queue> {
        self.queues.get(logical)
    }

    pub fn bucket(&self, logical: &str) -> &str {
        self.buckets.get(logical).map_or("", String::as_str)
    }
}

impl Resolver for Stack {
    fn reference(&self, name: &str) -> Option<Resolved> {
        let s = |v: &str| Some(Resolved::Str(v.to_owned()));
        match name {
            "AWS::Region" => return s(&self.region),
            "AWS::AccountId" => return s(&self.account),
            "AWS::StackName" => return s(&self.prefix),
            "AWS::Partition" => return s("aws"),
            "AWS::URLSuffix" => return s("amazonaws.com"),
            _ => {}
        }
        if let Some(p) = self.parameters.get(name) {
            return Some(p.clone());
        }
        if let Some(t) = self.tables.get(name) {
            return s(t);
        }
        if let Some(q) = self.queues.get(name) {
            return s(&q.url);
        }
        if let Some(b) = self.buckets.get(name) {
            return s(b);
        }
        // Resources the local stack does not create (user pool, topic, ...)
        // resolve to a placeholder so environments referring to them still load.
        Some(Resolved::Str(self.physical(name)))
    }

    fn attribute(&self, resource: &str, attribute: &str) -> Option<String> {
        if let Some(t) = self.tables.get(resource) {
            return match attribute {
                "Arn" => Some(format!(
                    "arn:aws:dynamodb:{}:{}:table/{t}",
                    self.region, self.account
                )),
                _ => None,
            };
        }
        if let Some(q) = self.queues.get(resource) {
            return match attribute {
                "Arn" => Some(q.arn.clone()),
                "QueueName" => Some(q.name.clone()),
                "QueueUrl" => Some(q.url.clone()),
                _ => None,
            };
        }
        if let Some(b) = self.buckets.get(resource) {
            return match attribute {
                "Arn" => Some(format!("arn:aws:s3:::{b}")),
                _ => None,
            };
        }
        Some(format!(
            "arn:aws:local:{}:{}:{}",
            self.region,
            self.account,
            self.physical(resource)
        ))
    }
}

/// Creates everything; resources that already exist (a second `make run`
/// against a kept emulator) are reused.
pub async fn create(
    template: &Template,
    sdk: &SdkConfig,
    prefix: &str,
) -> Result<Stack, BootstrapError> {
    let mut stack = Stack {
        prefix: prefix.to_owned(),
        region: sdk
            .region()
            .map_or("us-east-1".to_owned(), |r| r.to_string()),
        account: "000000000000".to_owned(),
        tables: BTreeMap::new(),
        queues: BTreeMap::new(),
        buckets: BTreeMap::new(),
        parameters: template.parameter_defaults(),
    };
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let s3 = aws_sdk_s3::Client::new(sdk);

    for (id, res) in template.resources_of_type("AWS::DynamoDB::Table") {
        let name = stack.physical(&id);
        create_table(&dynamo, &id, &name, &res["Properties"]).await?;
        stack.tables.insert(id, name);
    }

    // Queues in dependency order: a dead-letter queue before the queue that uses it.
    let mut pending = template.resources_of_type("AWS::SQS::Queue");
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for (id, res) in pending {
            let target = match &res["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] {
                Value::Tagged(t) => t
                    .value
                    .as_str()
                    .and_then(|s| s.split('.').next())
                    .map(str::to_owned),
                _ => None,
            };
            if target.is_some_and(|t| !stack.queues.contains_key(&t)) {
                rest.push((id, res));
                continue;
            }
            let queue = create_queue(&sqs, &stack, &id, res).await?;
            if stack.account == "000000000000" {
                // the emulator's own account id, as it puts it in ARNs
                if let Some(acct) = queue.arn.split(':').nth(4) {
                    stack.account = acct.to_owned();
                }
            }
            stack.queues.insert(id, queue);
        }
        if rest.len() == before {
            return Err(
                TemplateError::Invalid("queues refer to each other in a cycle".into()).into(),
            );
        }
        pending = rest;
    }

    for (id, res) in template.resources_of_type("AWS::S3::Bucket") {
        let name = stack.physical(&id).to_ascii_lowercase();
        match s3.create_bucket().bucket(&name).send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_bucket_already_owned_by_you()) => {}
            Err(e) => return Err(aws_err(&id)(e)),
        }
        stack.buckets.insert(id.clone(), name.clone());
        // as deployed: feed-ingest reads the notified version by its id
        if res["Properties"]["VersioningConfiguration"]["Status"].as_str() == Some("Enabled") {
            s3.put_bucket_versioning()
                .bucket(&name)
                .versioning_configuration(
                    aws_sdk_s3::types::VersioningConfiguration::builder()
                        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .map_err(aws_err(&id))?;
        }
        let mut configs = Vec::new();
        if let Some(list) =
            res["Properties"]["NotificationConfiguration"]["QueueConfigurations"].as_sequence()
        {
            for qc in list {
                let arn = resolve(&qc["Queue"], &stack)?.into_string();
                let mut builder = QueueConfiguration::builder()
                    .queue_arn(arn)
                    .events(Event::from(
                        qc["Event"].as_str().unwrap_or("s3:ObjectCreated:*"),
                    ));
                if let Some(rules) = qc["Filter"]["S3Key"]["Rules"].as_sequence() {
                    let rules = rules
                        .iter()
                        .map(|r| {
                            FilterRule::builder()
                                .name(FilterRuleName::from(r["Name"].as_str().unwrap_or("prefix")))
                                .value(r["Value"].as_str().unwrap_or(""))
                                .build()
                        })
                        .collect();
                    builder = builder.filter(
                        NotificationConfigurationFilter::builder()
                            .key(S3KeyFilter::builder().set_filter_rules(Some(rules)).build())
                            .build(),
                    );
                }
                configs.push(builder.build().map_err(|e| BootstrapError::Aws {
                    resource: id.clone(),
                    message: e.to_string(),
                })?);
            }
        }
        if !configs.is_empty() {
            s3.put_bucket_notification_configuration()
                .bucket(&name)
                .notification_configuration(
                    NotificationConfiguration::builder()
                        .set_queue_configurations(Some(configs))
                        .build(),
                )
                .send()
                .await
                .map_err(aws_err(&id))?;
        }
    }
    Ok(stack)
}

async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    id: &str,
    name: &str,
    p: &Value,
) -> Result<(), BootstrapError> {
    let bad = |what: &str| TemplateError::Invalid(format!("{id}: {what}"));
    let attrs = p["AttributeDefinitions"]
        .as_sequence()
        .ok_or_else(|| bad("no AttributeDefinitions"))?
        .iter()
        .map(|a| {
            AttributeDefinition::builder()
                .attribute_name(a["AttributeName"].as_str().unwrap_or_default())
                .attribute_type(ScalarAttributeType::from(
                    a["AttributeType"].as_str().unwrap_or("S"),
                ))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e.to_string()))?;
    let keys = |v: &Value| -> Result<Vec<KeySchemaElement>, TemplateError> {
        v.as_sequence()
            .ok_or_else(|| bad("no KeySchema"))?
            .iter()
            .map(|k| {
                KeySchemaElement::builder()
                    .attribute_name(k["AttributeName"].as_str().unwrap_or_default())
                    .key_type(KeyType::from(k["KeyType"].as_str().unwrap_or("HASH")))
                    .build()
                    .map_err(|e| bad(&e.to_string()))
            })
            .collect()
    };
    let mut gsis = Vec::new();
    for g in p["GlobalSecondaryIndexes"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        let projection = Projection::builder()
            .projection_type(ProjectionType::from(
                g["Projection"]["ProjectionType"].as_str().unwrap_or("ALL"),
            ))
            .set_non_key_attributes(g["Projection"]["NonKeyAttributes"].as_sequence().map(|s| {
                s.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            }))
            .build();
        gsis.push(
            GlobalSecondaryIndex::builder()
                .index_name(g["IndexName"].as_str().unwrap_or_default())
                .set_key_schema(Some(keys(&g["KeySchema"])?))
                .projection(projection)
                .build()
                .map_err(|e| bad(&e.to_string()))?,
        );
    }
    let created = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attrs))
        .set_key_schema(Some(keys(&p["KeySchema"])?))
        .set_global_secondary_indexes((!gsis.is_empty()).then_some(gsis))
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_in_use_exception()) =>
        {
            return Ok(());
        }
        Err(e) => return Err(aws_err(id)(e)),
    }
    if let Some(ttl) = p["TimeToLiveSpecification"]["AttributeName"].as_str() {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(ttl)
                    .enabled(true)
                    .build()
                    .map_err(|e| bad(&e.to_string()))?,
            )
            .send()
            .await
            .map_err(aws_err(id))?;
    }
    Ok(())
}

async fn create_queue(
    client: &aws_sdk_sqs::Client,
    stack: &Stack,
    id: &str,
    res: &Value,
) -> Result<Queue, BootstrapError> {
    let p = &res["Properties"];
    let name = stack.physical(id);
    let mut req = client.create_queue().queue_name(&name);
    for (prop, attr) in [
        ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
        (
            "MessageRetentionPeriod",
            QueueAttributeName::MessageRetentionPeriod,
        ),
        ("DelaySeconds", QueueAttributeName::DelaySeconds),
        (
            "ReceiveMessageWaitTimeSeconds",
            QueueAttributeName::ReceiveMessageWaitTimeSeconds,
        ),
    ] {
        if let Some(v) = p[prop].as_i64() {
            req = req.attributes(attr, v.to_string());
        }
    }
    let redrive = &p["RedrivePolicy"];
    if redrive.is_mapping() {
        let target = resolve(&redrive["deadLetterTargetArn"], stack)?.into_string();
        let max = redrive["maxReceiveCount"].as_i64().unwrap_or(5);
        req = req.attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({ "deadLetterTargetArn": target, "maxReceiveCount": max })
                .to_string(),
        );
    }
    let url = req
        .send()
        .await
        .map_err(aws_err(id))?
        .queue_url
        .unwrap_or_default();
    let arn = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(aws_err(id))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .unwrap_or_default();
    Ok(Queue { name, url, arn })
}

/// Removes everything `create` made (tests call this when they finish).
pub async fn destroy(stack: &Stack, sdk: &SdkConfig) {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let s3 = aws_sdk_s3::Client::new(sdk);
    for name in stack.tables.values() {
        let _ = dynamo.delete_table().table_name(name).send().await;
    }
    for q in stack.queues.values() {
        let _ = sqs.delete_queue().queue_url(&q.url).send().await;
    }
    for b in stack.buckets.values() {
        if let Ok(list) = s3.list_objects_v2().bucket(b).send().await {
            for o in list.contents() {
                if let Some(k) = o.key() {
                    let _ = s3.delete_object().bucket(b).key(k).send().await;
                }
            }
        }
        let _ = s3.delete_bucket().bucket(b).send().await;
    }
}
