use super::*;
use proptest::prelude::*;

fn account(id: &str, currency: &str, flags: Flags) -> Account {
    Account { id: id.into(), currency: currency.into(), flags, debits_posted: 0, credits_posted: 0, debits_pending: 0, credits_pending: 0 }
}

fn leg(account: &str, direction: Direction, amount: i64, currency: &str) -> Leg {
    Leg { account_id: account.into(), direction, amount, currency: currency.into() }
}

fn book_of(accounts: &[Account]) -> BTreeMap<String, Account> {
    accounts.iter().map(|a| (a.id.clone(), a.clone())).collect()
}

/// A funded wallet (credit balance 10_000), a clinic revenue account and a USD account.
fn world() -> BTreeMap<String, Account> {
    let mut wallet = account("wallet", "NGN", Flags::DebitsMustNotExceedCredits);
    wallet.credits_posted = 10_000;
    let mut cash = account("cash", "NGN", Flags::CreditsMustNotExceedDebits);
    cash.debits_posted = 10_000;
    book_of(&[wallet, cash, account("revenue", "NGN", Flags::None), account("usd", "USD", Flags::None)])
}

use Direction::{Credit, Debit};

#[test]
fn a_balanced_transfer_moves_money() {
    let after = apply(&world(), &Action::Post(vec![leg("wallet", Debit, 4_000, "NGN"), leg("revenue", Credit, 4_000, "NGN")])).unwrap();
    assert_eq!((after["wallet"].debits_posted, after["revenue"].credits_posted), (4_000, 4_000));
}

#[test]
fn each_error_has_its_own_code() {
    let w = world();
    let err = |a: Action| apply(&w, &a).unwrap_err();
    let e = err(Action::Post(vec![leg("wallet", Debit, 100, "NGN"), leg("revenue", Credit, 90, "NGN")]));
    assert_eq!((e.sqlstate(), e.code()), ("LG001", "unbalanced"));
    let e = err(Action::Post(vec![leg("wallet", Debit, 100, "NGN"), leg("usd", Credit, 100, "NGN")]));
    assert_eq!((e.sqlstate(), e.code()), ("LG002", "mixed_currency"));
    let e = err(Action::Post(vec![leg("wallet", Debit, 10_001, "NGN"), leg("revenue", Credit, 10_001, "NGN")]));
    assert_eq!((e.sqlstate(), e.code()), ("LG003", "exceeds_credits"));
    let e = err(Action::Post(vec![leg("revenue", Debit, 1, "NGN"), leg("cash", Credit, 10_001, "NGN"), leg("revenue", Debit, 10_000, "NGN")]));
    assert_eq!((e.sqlstate(), e.code()), ("LG003", "exceeds_debits"));
    let e = err(Action::Post(vec![leg("wallet", Debit, 0, "NGN"), leg("revenue", Credit, 0, "NGN")]));
    assert_eq!(e.sqlstate(), "LG009");
    let e = err(Action::Post(vec![leg("wallet", Debit, 5, "NGN")]));
    assert_eq!(e.sqlstate(), "LG011");
    let e = err(Action::Post(vec![leg("ghost", Debit, 5, "NGN"), leg("revenue", Credit, 5, "NGN")]));
    assert_eq!(e.sqlstate(), "LG010");
    let e = err(Action::Reserve(vec![leg("wallet", Debit, 5, "NGN"), leg("revenue", Credit, 3, "NGN"), leg("revenue", Credit, 2, "NGN")]));
    assert_eq!(e.sqlstate(), "LG011", "pending transfers have exactly two legs");
}

#[test]
fn two_phase_reserve_post_in_part_and_never_more_than_reserved() {
    let legs = vec![leg("wallet", Debit, 6_000, "NGN"), leg("revenue", Credit, 6_000, "NGN")];
    let reserved = apply(&world(), &Action::Reserve(legs.clone())).unwrap();
    assert_eq!((reserved["wallet"].debits_pending, reserved["wallet"].debits_posted), (6_000, 0));
    // The reservation counts against the wallet's flag.
    let e = apply(&reserved, &Action::Post(vec![leg("wallet", Debit, 4_001, "NGN"), leg("revenue", Credit, 4_001, "NGN")])).unwrap_err();
    assert_eq!(e.code(), "exceeds_credits");
    let e = apply(&reserved, &Action::PostPending { legs: legs.clone(), state: PendingState::Pending, amount: Some(6_001) }).unwrap_err();
    assert_eq!((e.sqlstate(), e.code()), ("LG005", "exceeds_pending_amount"));
    let posted = apply(&reserved, &Action::PostPending { legs: legs.clone(), state: PendingState::Pending, amount: Some(2_500) }).unwrap();
    assert_eq!((posted["wallet"].debits_pending, posted["wallet"].debits_posted, posted["revenue"].credits_posted), (0, 2_500, 2_500));
    for (state, code) in [(PendingState::Posted, "LG006"), (PendingState::Voided, "LG007"), (PendingState::Expired, "LG008")] {
        assert_eq!(apply(&reserved, &Action::PostPending { legs: legs.clone(), state, amount: None }).unwrap_err().sqlstate(), code);
        assert_eq!(apply(&reserved, &Action::VoidPending { legs: legs.clone(), state }).unwrap_err().sqlstate(), code);
    }
    let voided = apply(&reserved, &Action::VoidPending { legs, state: PendingState::Pending }).unwrap();
    assert_eq!(voided, world());
}

#[test]
fn same_request_is_the_same_transfer_and_differences_are_named() {
    let a = serde_json::json!({"kind": "fee", "legs": [1, 2], "description": null});
    assert!(differing_fields(&a, &a.clone()).is_empty());
    let b = serde_json::json!({"kind": "refund", "legs": [1, 3]});
    assert_eq!(differing_fields(&a, &b), ["kind", "legs"]);
}

// Properties ------------------------------------------------------------------------------------

const IDS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

fn accounts() -> BTreeMap<String, Account> {
    let flags = [Flags::DebitsMustNotExceedCredits, Flags::CreditsMustNotExceedDebits, Flags::None];
    let mut m: BTreeMap<String, Account> = IDS
        .iter()
        .enumerate()
        .map(|(i, id)| (id.to_string(), account(id, if i < 5 { "NGN" } else { "KWD" }, flags[i % 3])))
        .collect();
    // Opening balances: a (credit-balance) funded from b (debit-balance).
    m.get_mut("a").unwrap().credits_posted = 50_000;
    m.get_mut("b").unwrap().debits_posted = 50_000;
    m
}

fn invariants(m: &BTreeMap<String, Account>) -> Result<(), String> {
    for currency in ["NGN", "KWD"] {
        let (mut d, mut c, mut dq, mut cq) = (0i128, 0i128, 0i128, 0i128);
        for a in m.values().filter(|a| a.currency == currency) {
            d += i128::from(a.debits_posted);
            c += i128::from(a.credits_posted);
            dq += i128::from(a.debits_pending);
            cq += i128::from(a.credits_pending);
            if a.debits_posted < 0 || a.credits_posted < 0 || a.debits_pending < 0 || a.credits_pending < 0 {
                return Err(format!("negative balance on {}", a.id));
            }
            match a.flags {
                Flags::DebitsMustNotExceedCredits if a.debits_posted + a.debits_pending > a.credits_posted => return Err(format!("{} overdrawn", a.id)),
                Flags::CreditsMustNotExceedDebits if a.credits_posted + a.credits_pending > a.debits_posted => return Err(format!("{} overdrawn", a.id)),
                _ => {}
            }
        }
        if d != c || dq != cq {
            return Err(format!("{currency} does not balance"));
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Op {
    Post(usize, usize, i64),
    Reserve(usize, usize, i64),
    Settle(usize, Option<i64>, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..IDS.len(), 0..IDS.len(), 1i64..20_000).prop_map(|(a, b, n)| Op::Post(a, b, n)),
        (0..IDS.len(), 0..IDS.len(), 1i64..20_000).prop_map(|(a, b, n)| Op::Reserve(a, b, n)),
        (0usize..8, prop::option::of(1i64..25_000), any::<bool>()).prop_map(|(i, n, post)| Op::Settle(i, n, post)),
    ]
}

proptest! {
    #[test]
    fn random_transfer_sequences_keep_every_invariant(ops in prop::collection::vec(op(), 1..60)) {
        let mut m = accounts();
        let mut pendings: Vec<(Vec<Leg>, PendingState)> = Vec::new();
        for op in ops {
            let currency_of = |i: usize| if i < 5 { "NGN" } else { "KWD" };
            let (action, pending_index) = match op {
                Op::Post(a, b, n) => (Action::Post(vec![leg(IDS[a], Debit, n, currency_of(a)), leg(IDS[b], Credit, n, currency_of(a))]), None),
                Op::Reserve(a, b, n) => (Action::Reserve(vec![leg(IDS[a], Debit, n, currency_of(a)), leg(IDS[b], Credit, n, currency_of(a))]), None),
                Op::Settle(i, _, _) if pendings.is_empty() || i >= pendings.len() => continue,
                Op::Settle(i, amount, true) => (Action::PostPending { legs: pendings[i].0.clone(), state: pendings[i].1, amount }, Some((i, PendingState::Posted))),
                Op::Settle(i, _, false) => (Action::VoidPending { legs: pendings[i].0.clone(), state: pendings[i].1 }, Some((i, PendingState::Voided))),
            };
            match apply(&m, &action) {
                Ok(next) => {
                    prop_assert!(invariants(&next).is_ok(), "{:?} after {:?}", invariants(&next), action);
                    m = next;
                    if let Action::Reserve(legs) = &action {
                        pendings.push((legs.clone(), PendingState::Pending));
                    }
                    if let Some((i, s)) = pending_index {
                        pendings[i].1 = s;
                    }
                }
                Err(_) => prop_assert!(invariants(&m).is_ok()),
            }
        }
    }
}
