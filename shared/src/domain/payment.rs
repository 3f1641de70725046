//! What a payment fact does to an order (ADR 0018). The provider's facts
//! (the finalizer's charge result, or a webhook) arrive in any order and any
//! number of times; each is applied as one conditional step, and the steps
//! are chosen so that every order of delivery of one charge's facts ends in
//! the same state.

use super::order::OrderStatus;

/// A fact about an order's charge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Fact {
    Succeeded { payment_id: String },
    Failed { code: String },
    Refunded { payment_id: String },
}

/// Why a fact changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unchanged {
    /// Its effect is already there (a duplicate, or a failure after the
    /// success that superseded it).
    AlreadyApplied,
    /// It contradicts what the order already settled (a success for an order
    /// that failed or expired, a refund of one never paid): recorded and
    /// audited for a person to reconcile; the state does not move.
    Contradicts,
}

/// The one conditional step a fact takes from `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `pending_payment -> paid`, then `confirmed` (or `refunded` when a
    /// refund was seen first).
    Pay,
    /// `paid -> confirmed` (or `refunded`): finishing a `Pay` that stopped
    /// halfway (a crash between its two writes).
    Confirm,
    /// `pending_payment -> payment_failed`, the stock released in the same
    /// transaction.
    Fail,
    /// `paid | confirmed -> refunded` (releases nothing: the units were sold).
    Refund,
    /// A refund before its success: remembered on the pending order.
    RememberRefund,
    Nothing(Unchanged),
}

pub fn step(status: OrderStatus, fact: &Fact) -> Step {
    use OrderStatus::*;
    match (fact, status) {
        (Fact::Succeeded { .. }, PendingPayment) => Step::Pay,
        (Fact::Succeeded { .. }, Paid) => Step::Confirm,
        (Fact::Succeeded { .. }, Confirmed | Refunded) => Step::Nothing(Unchanged::AlreadyApplied),
        (Fact::Succeeded { .. }, PaymentFailed | Expired) => Step::Nothing(Unchanged::Contradicts),
        (Fact::Failed { .. }, PendingPayment) => Step::Fail,
        // an attempt that failed before the one that succeeded, or a duplicate
        (Fact::Failed { .. }, Paid | Confirmed | Refunded | PaymentFailed) => {
            Step::Nothing(Unchanged::AlreadyApplied)
        }
        (Fact::Failed { .. }, Expired) => Step::Nothing(Unchanged::AlreadyApplied),
        (Fact::Refunded { .. }, PendingPayment) => Step::RememberRefund,
        (Fact::Refunded { .. }, Paid | Confirmed) => Step::Refund,
        (Fact::Refunded { .. }, Refunded) => Step::Nothing(Unchanged::AlreadyApplied),
        (Fact::Refunded { .. }, PaymentFailed | Expired) => Step::Nothing(Unchanged::Contradicts),
    }
}

/// The state after `Pay`: `confirmed`, or `refunded` when a refund came first.
pub fn after_paid(refund_seen: bool) -> OrderStatus {
    if refund_seen {
        OrderStatus::Refunded
    } else {
        OrderStatus::Confirmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An order as the steps move it: status, the remembered refund, and how
    /// often its stock was released.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Sim {
        status: OrderStatus,
        refund_seen: bool,
        releases: u32,
    }

    fn apply(mut o: Sim, fact: &Fact) -> Sim {
        match step(o.status, fact) {
            Step::Pay => {
                assert!(o.status.can_become(OrderStatus::Paid));
                let next = after_paid(o.refund_seen);
                assert!(OrderStatus::Paid.can_become(next));
                o.status = next;
            }
            Step::Confirm => {
                let next = after_paid(o.refund_seen);
                assert!(o.status.can_become(next));
                o.status = next;
            }
            Step::Fail => {
                assert!(o.status.can_become(OrderStatus::PaymentFailed));
                o.status = OrderStatus::PaymentFailed;
                o.releases += 1;
            }
            Step::Refund => {
                assert!(o.status.can_become(OrderStatus::Refunded));
                o.status = OrderStatus::Refunded;
            }
            Step::RememberRefund => o.refund_seen = true,
            Step::Nothing(_) => {}
        }
        o
    }

    fn permutations(items: &[Fact]) -> Vec<Vec<Fact>> {
        if items.len() <= 1 {
            return vec![items.to_vec()];
        }
        let mut out = Vec::new();
        for i in 0..items.len() {
            let mut rest = items.to_vec();
            let first = rest.remove(i);
            for mut p in permutations(&rest) {
                p.insert(0, first.clone());
                out.push(p);
            }
        }
        out
    }

    const START: Sim = Sim {
        status: OrderStatus::PendingPayment,
        refund_seen: false,
        releases: 0,
    };

    fn ok() -> Fact {
        Fact::Succeeded {
            payment_id: "ch_1".into(),
        }
    }
    fn failed() -> Fact {
        Fact::Failed {
            code: "card_declined".into(),
        }
    }
    fn refunded() -> Fact {
        Fact::Refunded {
            payment_id: "ch_1".into(),
        }
    }

    /// Every delivery order of what one charge can report (each fact up to
    /// three times, as webhooks and the finalizer both report it) ends in the
    /// same state, and stock is released at most once.
    #[test]
    fn every_delivery_order_of_one_charges_facts_ends_the_same() {
        // One order is one idempotency key, so one charge with one outcome:
        // it succeeds (and may be refunded later) or it fails.
        let histories: [(&[Fact], OrderStatus); 3] = [
            (&[ok()], OrderStatus::Confirmed),
            (&[failed()], OrderStatus::PaymentFailed),
            (&[ok(), refunded()], OrderStatus::Refunded),
        ];
        for (facts, want) in histories {
            for copies in 1..=3 {
                let all: Vec<Fact> = facts
                    .iter()
                    .flat_map(|f| std::iter::repeat_n(f.clone(), copies))
                    .collect();
                for order in permutations(&all) {
                    let end = order.iter().fold(START, apply);
                    assert_eq!(end.status, want, "{order:?}");
                    assert!(
                        end.releases <= 1,
                        "{order:?}: released {} times",
                        end.releases
                    );
                }
            }
        }
    }

    /// What one charge cannot report together (a failure and a success) is
    /// never resolved by moving the state: whichever settled first stays, and
    /// the other is a contradiction for a person (audited).
    #[test]
    fn contradictions_leave_the_settled_state_alone() {
        let failed_then_ok = [failed(), ok()].iter().fold(START, apply);
        assert_eq!(failed_then_ok.status, OrderStatus::PaymentFailed);
        assert_eq!(failed_then_ok.releases, 1);
        assert_eq!(
            step(OrderStatus::PaymentFailed, &ok()),
            Step::Nothing(Unchanged::Contradicts)
        );
        assert_eq!(
            step(OrderStatus::Expired, &ok()),
            Step::Nothing(Unchanged::Contradicts)
        );
        assert_eq!(
            step(OrderStatus::PaymentFailed, &refunded()),
            Step::Nothing(Unchanged::Contradicts)
        );
    }

    /// Every step is a transition DESIGN.md allows, from every status.
    /// A crash between `paid` and `confirmed` is finished by the next
    /// report of the success (redelivery, webhook or sweeper).
    #[test]
    fn a_success_finishes_an_order_left_paid() {
        let halfway = Sim {
            status: OrderStatus::Paid,
            ..START
        };
        assert_eq!(apply(halfway, &ok()).status, OrderStatus::Confirmed);
        let refund_first = Sim {
            status: OrderStatus::Paid,
            refund_seen: true,
            ..START
        };
        assert_eq!(apply(refund_first, &ok()).status, OrderStatus::Refunded);
    }

    #[test]
    fn steps_only_take_allowed_transitions() {
        use OrderStatus::*;
        for status in [
            PendingPayment,
            Paid,
            Confirmed,
            PaymentFailed,
            Expired,
            Refunded,
        ] {
            for fact in [ok(), failed(), refunded()] {
                let target = match step(status, &fact) {
                    Step::Pay => Some(Paid),
                    Step::Confirm => Some(Confirmed),
                    Step::Fail => Some(PaymentFailed),
                    Step::Refund => Some(Refunded),
                    Step::RememberRefund | Step::Nothing(_) => None,
                };
                if let Some(t) = target {
                    assert!(status.can_become(t), "{status:?} -> {t:?}");
                }
            }
        }
    }
}
