//! The one way a TransactWriteItems runs. Each item is tagged with the role it
//! plays, so a cancellation is read by role ("the shard", "the buyer's
//! counter"), never by position; a cancellation caused only by
//! `TransactionConflict` (another transaction on the same items, which the SDK
//! does not retry) is tried again under one policy, [`RETRY`].

use super::{Item, StoreError};
use crate::backoff::Backoff;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{CancellationReason, TransactWriteItem};
use std::time::Duration;

/// Three tries, waiting up to 10, 20 ms between them: a conflict lasts as long
/// as the other transaction, a few milliseconds, and a buyer is waiting.
pub(crate) const RETRY: Backoff = Backoff {
    attempts: 3,
    base: Duration::from_millis(10),
    cap: Duration::from_millis(100),
};

/// Items and their roles, committed together or not at all.
pub(crate) struct Transaction<R> {
    items: Vec<TransactWriteItem>,
    roles: Vec<R>,
}

/// Why DynamoDB cancelled a transaction, item by item, by role.
#[derive(Debug)]
pub(crate) struct Cancelled<R> {
    reasons: Vec<(R, CancellationReason)>,
}

const CONDITION_FAILED: &str = "ConditionalCheckFailed";
const CONFLICT: &str = "TransactionConflict";

impl<R: Copy + PartialEq> Transaction<R> {
    pub fn new() -> Self {
        Self {
            items: Vec::new(),
            roles: Vec::new(),
        }
    }

    pub fn push(&mut self, role: R, item: TransactWriteItem) {
        self.items.push(item);
        self.roles.push(role);
    }

    /// Commits, retrying conflicts under [`RETRY`]. `Ok(Err(cancelled))` when
    /// a condition failed, or conflicts outlasted the retries.
    pub async fn commit(&self, client: &Client) -> Result<Result<(), Cancelled<R>>, StoreError> {
        let mut attempt = 0;
        loop {
            let result = client
                .transact_write_items()
                .set_transact_items(Some(self.items.clone()))
                .send()
                .await;
            let cancelled = match result {
                Ok(_) => return Ok(Ok(())),
                Err(e) => match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(c)) => Cancelled {
                        reasons: self
                            .roles
                            .iter()
                            .copied()
                            .zip(c.cancellation_reasons().iter().cloned())
                            .collect(),
                    },
                    _ => return Err(StoreError::dynamo("TransactWriteItems", &e)),
                },
            };
            attempt += 1;
            if !cancelled.only_conflicts() || attempt >= RETRY.attempts {
                return Ok(Err(cancelled));
            }
            RETRY.wait(attempt - 1).await;
        }
    }
}

impl<R: Copy + PartialEq> Cancelled<R> {
    fn codes(&self) -> impl Iterator<Item = (R, &CancellationReason, &str)> {
        self.reasons
            .iter()
            .filter_map(|(role, r)| r.code().map(|c| (*role, r, c)))
    }

    /// Whether the condition of an item in `role` failed.
    pub fn failed(&self, role: R) -> bool {
        self.codes()
            .any(|(r, _, code)| r == role && code == CONDITION_FAILED)
    }

    /// The first role whose condition failed among those `pick` accepts, with
    /// the item as it was (when DynamoDB returned it).
    pub fn first_failed(&self, pick: impl Fn(R) -> bool) -> Option<(R, Option<&Item>)> {
        self.codes()
            .find(|(r, _, code)| pick(*r) && *code == CONDITION_FAILED)
            .map(|(r, reason, _)| (r, reason.item()))
    }

    /// Every item that failed its condition, with the item as it was when
    /// the item asked for it (`ReturnValuesOnConditionCheckFailure`).
    pub fn condition_failures(&self) -> impl Iterator<Item = (R, Option<&Item>)> {
        self.codes()
            .filter(|(_, _, code)| *code == CONDITION_FAILED)
            .map(|(r, reason, _)| (r, reason.item()))
    }

    /// Whether the cancellation tells all there is to know: every item
    /// either passed or failed its condition and came back as it was (no
    /// conflict, throttling or validation left an item unexamined).
    pub fn conditions_only(&self) -> bool {
        self.reasons.iter().all(|(_, r)| match r.code() {
            None | Some("None") => true,
            Some(CONDITION_FAILED) => r.item().is_some(),
            Some(_) => false,
        })
    }

    /// Whether only conflicts with other transactions cancelled it (worth a retry).
    fn only_conflicts(&self) -> bool {
        let mut conflicted = false;
        for (_, _, code) in self.codes() {
            match code {
                CONFLICT => conflicted = true,
                "None" => {}
                _ => return false,
            }
        }
        conflicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Role {
        Stock,
        Record,
    }

    fn cancelled(codes: &[(Role, &str)]) -> Cancelled<Role> {
        Cancelled {
            reasons: codes
                .iter()
                .map(|(r, c)| (*r, CancellationReason::builder().code(*c).build()))
                .collect(),
        }
    }

    #[test]
    fn reasons_are_read_by_role() {
        let c = cancelled(&[(Role::Stock, "None"), (Role::Record, CONDITION_FAILED)]);
        assert!(c.failed(Role::Record));
        assert!(!c.failed(Role::Stock));
        assert_eq!(c.first_failed(|_| true).map(|(r, _)| r), Some(Role::Record));
        assert!(!c.only_conflicts());
    }

    #[test]
    fn only_pure_conflicts_are_retried() {
        assert!(cancelled(&[(Role::Stock, CONFLICT), (Role::Record, "None")]).only_conflicts());
        assert!(
            !cancelled(&[(Role::Stock, CONFLICT), (Role::Record, CONDITION_FAILED)])
                .only_conflicts()
        );
        assert!(!cancelled(&[(Role::Stock, "None")]).only_conflicts());
    }

    #[test]
    fn a_cancellation_explains_itself_only_with_every_old_item() {
        use aws_sdk_dynamodb::types::AttributeValue;
        let old = Item::from([("pk".to_owned(), AttributeValue::S("x".into()))]);
        let with_item = CancellationReason::builder()
            .code(CONDITION_FAILED)
            .set_item(Some(old))
            .build();
        let explained = Cancelled {
            reasons: vec![
                (Role::Stock, with_item.clone()),
                (
                    Role::Record,
                    CancellationReason::builder().code("None").build(),
                ),
            ],
        };
        assert!(explained.conditions_only());
        // a conflict left an item unexamined; a failure came back without its item
        assert!(!cancelled(&[(Role::Stock, CONFLICT), (Role::Record, "None")]).conditions_only());
        assert!(!cancelled(&[(Role::Stock, CONDITION_FAILED)]).conditions_only());
        let mixed = Cancelled {
            reasons: vec![
                (Role::Stock, with_item),
                (
                    Role::Record,
                    CancellationReason::builder().code(CONFLICT).build(),
                ),
            ],
        };
        assert!(!mixed.conditions_only());
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(RETRY.ceiling(0), Duration::from_millis(10));
        assert_eq!(RETRY.ceiling(1), Duration::from_millis(20));
        assert_eq!(RETRY.ceiling(4), Duration::from_millis(100));
        assert_eq!(RETRY.ceiling(40), Duration::from_millis(100));
    }
}
