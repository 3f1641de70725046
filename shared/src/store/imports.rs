//! Import records (Partners table, ADR 0022): the claim of one object version,
//! and the progress of the invocation that holds it.

use super::keys::partners as keys;
use super::keys::{GSI1PK, GSI1SK, PK, SK};
use super::{
    ListError, Page, StoreError, conditional, get_item, item_with_keys, number_attr, string_attr,
};
use crate::domain::ts;
use crate::feeds::import::{Import, ImportStatus, Upload, padded_sequencer};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnValue;
use chrono::{DateTime, Utc};

/// What claiming an object version found.
#[derive(Debug)]
pub enum Claim {
    /// The record is new: this invocation holds the import.
    New,
    /// Another delivery claimed it first; its record as it is now.
    Taken(Box<Import>),
}

#[derive(Clone, Debug)]
pub struct ImportStore {
    client: Client,
    table: String,
}

impl ImportStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn item(import: &Import) -> Result<super::Item, StoreError> {
        item_with_keys(import, keys::import_keys(import))
    }

    pub async fn get(&self, import_id: &str) -> Result<Option<Import>, StoreError> {
        get_item(&self.client, &self.table, keys::import(import_id), true).await
    }

    /// Puts the record of a new import unless its object version was claimed.
    pub async fn claim(&self, import: &Import) -> Result<Claim, StoreError> {
        if super::put_if_absent(&self.client, &self.table, Self::item(import)?).await? {
            return Ok(Claim::New);
        }
        match self.get(&import.import_id).await? {
            Some(found) => Ok(Claim::Taken(Box::new(found))),
            None => Err(StoreError::Corrupt(format!(
                "import {} was claimed and is gone",
                import.import_id
            ))),
        }
    }

    /// Takes the import from run `from` (whose holder handed it over, or whose
    /// lease ran out): `None` if someone else took it first or it is finished.
    pub async fn take(
        &self,
        import_id: &str,
        from: u32,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Import>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::import(import_id)))
            .update_expression("SET #run = :next, lease_until = :lease, updated_at = :now")
            .condition_expression("#run = :from AND #status = :processing")
            .expression_attribute_names("#run", "run")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":from", number_attr(from))
            .expression_attribute_values(":next", number_attr(from + 1))
            .expression_attribute_values(":lease", string_attr(ts::format(&lease_until)))
            .expression_attribute_values(":now", string_attr(ts::format(&now)))
            .expression_attribute_values(
                ":processing",
                string_attr(ImportStatus::Processing.as_str()),
            )
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        super::updated(result)
    }

    /// Writes the holder's state: `false` if the import is no longer its own.
    pub async fn save(&self, import: &Import) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::item(import)?))
            .condition_expression("#run = :run")
            .expression_attribute_names("#run", "run")
            .expression_attribute_values(":run", number_attr(import.run))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(conditional) => Ok(false),
            Err(e) => Err(StoreError::dynamo("PutItem", &e)),
        }
    }

    /// Records `sequencer` as the newest event of the object key unless a
    /// newer one was seen: `false` means this event is stale.
    pub async fn newest_event(
        &self,
        bucket: &str,
        key: &str,
        sequencer: &str,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::object_key(bucket, key)))
            .update_expression("SET #seq = :seq")
            .condition_expression("attribute_not_exists(#seq) OR #seq <= :seq")
            .expression_attribute_names("#seq", "sequencer")
            .expression_attribute_values(":seq", string_attr(padded_sequencer(sequencer)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(conditional) => Ok(false),
            Err(e) => Err(StoreError::dynamo("UpdateItem", &e)),
        }
    }

    /// The import of `partner_id`'s feed `feed_id` whose object is newest
    /// (the `by_feed` index, eventually consistent: an import claimed a
    /// moment ago may show a moment later).
    pub async fn latest_of_feed(
        &self,
        partner_id: &str,
        feed_id: &str,
    ) -> Result<Option<Import>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::BY_FEED)
            .key_condition_expression("#f = :f")
            .expression_attribute_names("#f", super::keys::GSI2PK)
            .expression_attribute_values(":f", string_attr(keys::feed(partner_id, feed_id)))
            .scan_index_forward(false)
            .limit(1)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", &e))?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .next()
            .map(serde_dynamo::from_item)
            .transpose()
            .map_err(StoreError::from)
    }

    /// Records an upload asked for; `false` if the feed id was taken.
    pub async fn put_upload(&self, upload: &Upload) -> Result<bool, StoreError> {
        let item = item_with_keys(upload, keys::upload(&upload.partner_id, &upload.feed_id))?;
        super::put_if_absent(&self.client, &self.table, item).await
    }

    /// The upload `partner_id` asked for under `feed_id`, if any.
    pub async fn upload(
        &self,
        partner_id: &str,
        feed_id: &str,
    ) -> Result<Option<Upload>, StoreError> {
        get_item(
            &self.client,
            &self.table,
            keys::upload(partner_id, feed_id),
            true,
        )
        .await
    }

    /// A page of `partner_id`'s imports, newest first (the `by_partner`
    /// index). A cursor of another partner's listing is refused, not sent.
    pub async fn list_by_partner(
        &self,
        partner_id: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Import>, ListError> {
        let index_pk = string_attr(keys::imports_of(partner_id));
        let start = cursor
            .map(|c| crate::cursor::decode(c, &[PK, SK, GSI1PK, GSI1SK]))
            .transpose()?;
        if start
            .as_ref()
            .is_some_and(|s| s.get(GSI1PK) != Some(&index_pk))
        {
            return Err(crate::cursor::CursorError.into());
        }
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::BY_PARTNER)
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", GSI1PK)
            .expression_attribute_values(":p", index_pk)
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", &e))?;
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(serde_dynamo::from_item)
            .collect::<Result<Vec<Import>, _>>()
            .map_err(StoreError::from)?;
        Ok(Page {
            items,
            next_cursor: out
                .last_evaluated_key
                .filter(|k| !k.is_empty())
                .and_then(|k| crate::cursor::encode(&k)),
        })
    }
}
