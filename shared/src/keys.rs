//! Every partition and sort key, built here and nowhere else.
//! The access patterns they serve are listed in docs/data-model.md.
//!
//! All tables use string attributes `pk` and `sk`; secondary indexes use
//! `gsi1pk`/`gsi1sk`. Entity prefixes keep one table able to hold more kinds of
//! item later without a migration (scenario M3).

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1PK: &str = "gsi1pk";
pub const GSI1SK: &str = "gsi1sk";

/// Catalog table. Products carry their own stock, so a checkout decrements the
/// product item itself. The table holds products only, so listing every product
/// is a plain paged Scan.
pub mod catalog {
    pub const BY_CATEGORY: &str = "by_category";
    pub const PRODUCT_SK: &str = "PRODUCT";

    pub fn product_pk(sku: &str) -> String {
        format!("PRODUCT#{sku}")
    }
    pub fn category_pk(category: &str) -> String {
        format!("CATEGORY#{category}")
    }
}

/// Flash-sales table. Each shard and each buyer's counter is its own partition
/// key, so a hot sale spreads over K + buyers partitions instead of one item.
pub mod flash_sales {
    pub const SALE_SK: &str = "SALE";
    pub const SHARD_SK: &str = "SHARD";
    pub const PURCHASES_SK: &str = "PURCHASES";

    pub fn sale_pk(sale_id: &str) -> String {
        format!("SALE#{sale_id}")
    }
    pub fn shard_pk(sale_id: &str, shard: u32) -> String {
        format!("SALE#{sale_id}#SHARD#{shard}")
    }
    pub fn purchases_pk(sale_id: &str, user: &str) -> String {
        format!("SALE#{sale_id}#USER#{user}")
    }
}

/// Orders table. `gsi1` (`by_status`) holds status -> reservation expiry, what
/// the sweeper walks.
pub mod orders {
    pub const ORDER_SK: &str = "ORDER";
    pub const BY_STATUS: &str = "by_status";

    pub fn order_pk(order_id: &str) -> String {
        format!("ORDER#{order_id}")
    }
    pub fn status_pk(status: &str) -> String {
        format!("STATUS#{status}")
    }
}

/// Requests table: short-lived records removed by TTL (`expires_at_epoch`).
pub mod requests {
    pub const IDEMPOTENCY_SK: &str = "IDEMPOTENCY";
    pub const THROTTLE_SK: &str = "THROTTLE";
    pub const TTL: &str = "expires_at_epoch";

    /// Keys are per user: one user's key never collides with another's.
    pub fn idempotency_pk(user: &str, key: &str) -> String {
        format!("IDEMPOTENCY#{user}#{key}")
    }
    /// One counter per user, SKU and fixed window.
    pub fn throttle_pk(user: &str, sku: &str, window_start: i64) -> String {
        format!("THROTTLE#{user}#{sku}#{window_start}")
    }
}

/// Audit table: append-only, one partition per UTC day, newest first by `sk`.
pub mod audit {
    use chrono::{DateTime, NaiveDate, Utc};

    pub fn day_pk(day: NaiveDate) -> String {
        format!("AUDIT#{}", day.format("%Y-%m-%d"))
    }
    /// Sorts by time; the id keeps two events of the same millisecond apart.
    pub fn event_sk(at: &DateTime<Utc>, id: &str) -> String {
        format!("{}#{id}", crate::domain::ts::format(at))
    }
}

/// Partners table: partners, their API keys (by key id, hash only), feeds.
pub mod partners {
    pub const PROFILE_SK: &str = "PROFILE";
    pub const KEY_SK: &str = "KEY";

    pub fn partner_pk(partner_id: &str) -> String {
        format!("PARTNER#{partner_id}")
    }
    pub fn api_key_pk(key_id: &str) -> String {
        format!("APIKEY#{key_id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_by_entity() {
        assert_eq!(catalog::product_pk("MUG-1"), "PRODUCT#MUG-1");
        assert_eq!(flash_sales::shard_pk("s1", 3), "SALE#s1#SHARD#3");
        assert_eq!(
            flash_sales::purchases_pk("s1", "alice"),
            "SALE#s1#USER#alice"
        );
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        assert_eq!(audit::day_pk(day), "AUDIT#2026-11-21");
    }
}
