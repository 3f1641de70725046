//! Every partition and sort key, built here and nowhere else. Builders return
//! the DynamoDB key (or the key attributes an item carries, indexes included),
//! so no store assembles one. The access patterns they serve are listed in
//! docs/data-model.md.
//!
//! All tables use string attributes `pk` and `sk`; secondary indexes use
//! `gsi1pk`/`gsi1sk`. Entity prefixes keep one table able to hold more kinds of
//! item later without a migration (scenario M3).

use super::{Item, string_attr};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1PK: &str = "gsi1pk";
pub const GSI1SK: &str = "gsi1sk";
pub const GSI2PK: &str = "gsi2pk";
pub const GSI2SK: &str = "gsi2sk";
pub const GSI3PK: &str = "gsi3pk";
pub const GSI3SK: &str = "gsi3sk";

/// A caller-supplied part of a key, length-prefixed (`5:alice`), so no value
/// can imitate the separators around it: `victim#pay` then `k-77` and `victim`
/// then `pay#k-77` are different keys. Values this API validates to exclude
/// `#` (sale ids, SKUs of the catalog) and the last part of a key need none.
fn part(value: &str) -> String {
    format!("{}:{value}", value.len())
}

fn key(pk: String, sk: impl Into<String>) -> Item {
    [
        (PK.to_owned(), string_attr(pk)),
        (SK.to_owned(), string_attr(sk)),
    ]
    .into()
}

fn with_index(mut item: Item, gsi1pk: String, gsi1sk: impl Into<String>) -> Item {
    item.insert(GSI1PK.to_owned(), string_attr(gsi1pk));
    item.insert(GSI1SK.to_owned(), string_attr(gsi1sk));
    item
}

/// Catalog table. Products carry their own stock, so a checkout decrements the
/// product item itself. The table holds products only, so listing every product
/// is a plain paged Scan.
pub mod catalog {
    use super::*;

    /// gsi1: category -> SKU.
    pub const BY_CATEGORY: &str = "by_category";

    pub fn product(sku: &str) -> Item {
        key(format!("PRODUCT#{sku}"), "PRODUCT")
    }
    /// A product's key attributes, its category index included.
    pub fn product_keys(sku: &str, category: &str) -> Item {
        with_index(product(sku), category_pk(category), sku)
    }
    pub fn category_pk(category: &str) -> String {
        format!("CATEGORY#{category}")
    }
}

/// Flash-sales table. Each shard and each buyer's counter is its own partition
/// key, so a hot sale spreads over K + buyers partitions instead of one item.
pub mod flash_sales {
    use super::*;

    pub fn sale(sale_id: &str) -> Item {
        key(format!("SALE#{sale_id}"), "SALE")
    }
    pub fn shard(sale_id: &str, shard: u32) -> Item {
        key(format!("SALE#{sale_id}#SHARD#{shard}"), "SHARD")
    }
    pub fn purchases(sale_id: &str, user: &str) -> Item {
        key(format!("SALE#{sale_id}#USER#{user}"), "PURCHASES")
    }
}

/// Orders table. gsi1 (`by_status`) holds status -> reservation expiry, what
/// the sweeper walks, write-sharded over [`orders::STATUS_SHARDS`] partition
/// keys per status (ADR 0012): every new order writes the index, and one
/// index partition takes about 1,000 writes/s.
pub mod orders {
    use super::*;
    use crate::domain::order::{Order, OrderStatus};
    use crate::domain::ts;
    use sha2::{Digest, Sha256};

    /// Partition keys per status in `by_status`: 64 x ~1,000 writes/s leaves
    /// room for 10,000 orders/s with every status change of their life
    /// (see docs/data-model.md, "Capacity of the order index").
    pub const STATUS_SHARDS: u32 = 64;
    pub const BY_STATUS: &str = "by_status";

    pub fn order(order_id: &str) -> Item {
        key(format!("ORDER#{order_id}"), "ORDER")
    }
    /// The order id an index entry's `pk` names.
    pub fn order_id_of(pk: &str) -> Option<&str> {
        pk.strip_prefix("ORDER#")
    }
    /// An order's key attributes, its status index included: the shard is a
    /// hash of the order id, so an order stays in one shard whatever its
    /// status, and ids of any shape spread evenly.
    pub fn order_keys(order: &Order) -> Item {
        with_index(
            self::order(&order.order_id),
            status_pk(order.status, shard_of(&order.order_id)),
            ts::format(&order.expires_at),
        )
    }
    /// The index partition key an order has in `status` (a status change
    /// writes it with the status).
    pub fn status_index(order_id: &str, status: OrderStatus) -> String {
        status_pk(status, shard_of(order_id))
    }
    /// Every partition key of `status` in `by_status`: what a reader of one
    /// status queries (one Query each, by expiry).
    pub fn status_partitions(status: OrderStatus) -> Vec<String> {
        (0..STATUS_SHARDS).map(|n| status_pk(status, n)).collect()
    }
    fn status_pk(status: OrderStatus, shard: u32) -> String {
        format!("STATUS#{}#{shard}", status.as_str())
    }
    fn shard_of(order_id: &str) -> u32 {
        let h = Sha256::digest(order_id.as_bytes());
        u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % STATUS_SHARDS
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn orders_spread_evenly_over_the_status_shards() {
            let mut per_shard = vec![0u32; STATUS_SHARDS as usize];
            for _ in 0..64_000 {
                let id = format!("ord-{}", uuid::Uuid::new_v4().simple());
                per_shard[shard_of(&id) as usize] += 1;
            }
            // 1,000 expected each; a uniform spread stays well within +-20%
            assert!(
                per_shard.iter().all(|n| (800..1200).contains(n)),
                "{per_shard:?}"
            );
            assert_eq!(shard_of("ord-1"), shard_of("ord-1"));
            let all = status_partitions(OrderStatus::PendingPayment);
            assert_eq!(all.len(), STATUS_SHARDS as usize);
            assert_eq!(all[7], "STATUS#pending_payment#7");
        }
    }
}

/// Requests table: short-lived records removed by TTL (`expires_at_epoch`).
pub mod requests {
    use super::*;

    pub const TTL: &str = "expires_at_epoch";

    /// Keys are per user: one user's key never collides with another's, both
    /// being free text (a JWT subject, an Idempotency-Key may hold `#`).
    pub fn idempotency(user: &str, key_value: &str) -> Item {
        key(
            format!("IDEMPOTENCY#{}#{key_value}", part(user)),
            "IDEMPOTENCY",
        )
    }
    /// A circuit breaker's shared state (ADR 0020).
    pub fn breaker(name: &str) -> Item {
        key(format!("BREAKER#{name}"), "BREAKER")
    }
    /// A provider's webhook event, by its id (deduplication, 30 days).
    pub fn webhook(event_id: &str) -> Item {
        key(format!("WEBHOOK#{event_id}"), "WEBHOOK")
    }
    /// One counter per user, SKU and fixed window (a cart's SKU is not yet
    /// validated against the catalog when it is counted).
    pub fn throttle(user: &str, sku: &str, window_start: i64) -> Item {
        key(
            format!("THROTTLE#{}#{}#{window_start}", part(user), part(sku)),
            "THROTTLE",
        )
    }
}

/// Audit table: append-only, one partition per UTC day, newest first by `sk`.
pub mod audit {
    use super::*;
    use chrono::{DateTime, NaiveDate, Utc};

    /// Each record's end of retention, for the table's TTL.
    pub const TTL: &str = "expires_at_epoch";

    pub fn day_pk(day: NaiveDate) -> String {
        format!("AUDIT#{}", day.format("%Y-%m-%d"))
    }
    /// Sorts by time; the id keeps two events of the same millisecond apart.
    pub fn event(at: &DateTime<Utc>, event_id: &str) -> Item {
        key(
            day_pk(at.date_naive()),
            format!("{}#{event_id}", crate::domain::ts::format(at)),
        )
    }
    /// Where a newest-first read of `day` resumes.
    pub fn resume_at(day: NaiveDate, sk: &str) -> Item {
        key(day_pk(day), sk)
    }
}

/// Partners table: partners, their API keys (by key id, hash only), feeds.
pub mod partners {
    use super::*;

    pub fn partner(partner_id: &str) -> Item {
        key(format!("PARTNER#{partner_id}"), "PROFILE")
    }
    pub fn api_key(key_id: &str) -> Item {
        key(format!("APIKEY#{key_id}"), "KEY")
    }
    /// gsi1: partner -> its imports, newest first.
    pub const BY_PARTNER: &str = "by_partner";
    /// An import: one object version of a feed (ADR 0022).
    pub fn import(import_id: &str) -> Item {
        key(format!("IMPORT#{import_id}"), "IMPORT")
    }
    /// gsi2: one feed of one partner -> its imports, newest object first
    /// (what `GET /partner/feeds/{feed_id}` reads).
    pub const BY_FEED: &str = "by_feed";
    /// An import's key attributes, both indexes included.
    pub fn import_keys(import: &crate::feeds::import::Import) -> Item {
        let id = &import.import_id;
        let created_at = crate::domain::ts::format(&import.created_at);
        let mut item = with_index(
            self::import(id),
            imports_of(&import.partner_id),
            format!("IMPORT#{created_at}#{id}"),
        );
        let object_at = crate::domain::ts::format(&import.source.created_at);
        item.insert(
            GSI2PK.to_owned(),
            string_attr(feed(&import.partner_id, &import.feed_id)),
        );
        item.insert(GSI2SK.to_owned(), string_attr(format!("{object_at}#{id}")));
        item
    }
    /// The `by_feed` partition of one feed of one partner.
    pub fn feed(partner_id: &str, feed_id: &str) -> String {
        format!("FEED#{}#{feed_id}", part(partner_id))
    }
    /// A feed's upload, asked for through `POST /partner/feeds` and not yet
    /// (or not yet known to be) made.
    pub fn upload(partner_id: &str, feed_id: &str) -> Item {
        key(format!("UPLOAD#{}#{feed_id}", part(partner_id)), "UPLOAD")
    }
    /// The `by_partner` partition of a partner's imports.
    pub fn imports_of(partner_id: &str) -> String {
        format!("PARTNER#{partner_id}")
    }
    /// A partner's fetch profile (issue 12; its secret is in Secrets Manager).
    pub fn fetch_profile(partner_id: &str) -> Item {
        key(format!("FETCHPROFILE#{}", part(partner_id)), "PROFILE")
    }
    /// gsi3, sparse: the profiles that may be fetched, by next fetch time.
    pub const BY_DUE: &str = "by_due";
    /// The one `by_due` partition (a fetch is a write every few minutes at
    /// most per partner: far below a partition's 1,000 a second).
    pub const DUE: &str = "DUE";
    /// One fetch of a partner's profile, newest last in its partition.
    pub fn fetch(partner_id: &str, started_at: &str, fetch_id: &str) -> Item {
        key(fetches_of(partner_id), format!("{started_at}#{fetch_id}"))
    }
    pub fn fetches_of(partner_id: &str) -> String {
        format!("FETCHES#{}", part(partner_id))
    }
    /// The table's TTL attribute: only fetch records carry it (a partner,
    /// its keys and its imports are kept).
    pub const TTL: &str = "expires_at_epoch";
    /// The newest S3 `sequencer` seen for one object key (the key is last).
    pub fn object_key(bucket: &str, object_key: &str) -> Item {
        key(format!("OBJECT#{}#{object_key}", part(bucket)), "SEQUENCER")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pk(item: &Item) -> &str {
        item[PK].as_s().unwrap()
    }

    #[test]
    fn user_supplied_parts_cannot_imitate_a_separator() {
        assert_ne!(
            pk(&requests::idempotency("victim#pay", "k-77")),
            pk(&requests::idempotency("victim", "pay#k-77"))
        );
        assert_ne!(
            pk(&requests::throttle("a#b", "c", 10)),
            pk(&requests::throttle("a", "b#c", 10))
        );
        assert_ne!(
            pk(&requests::throttle("a", "b#10", 20)),
            pk(&requests::throttle("a", "b", 10))
        );
        assert_eq!(
            pk(&requests::idempotency("alice", "k#1")),
            "IDEMPOTENCY#5:alice#k#1"
        );
    }

    #[test]
    fn keys_are_prefixed_by_entity() {
        assert_eq!(pk(&catalog::product("MUG-1")), "PRODUCT#MUG-1");
        assert_eq!(pk(&flash_sales::shard("s1", 3)), "SALE#s1#SHARD#3");
        assert_eq!(
            pk(&flash_sales::purchases("s1", "alice")),
            "SALE#s1#USER#alice"
        );
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        assert_eq!(audit::day_pk(day), "AUDIT#2026-11-21");
        let indexed = catalog::product_keys("MUG-1", "kitchen");
        assert_eq!(indexed[GSI1PK].as_s().unwrap(), "CATEGORY#kitchen");
        assert_eq!(indexed.len(), 4);
    }
}
