//! The facts payments' invariants need, read from its own store: each order's payment status
//! and the money captured and refunded. `tessera verify` and the simulation hand them to the
//! shared checker (`tessera-invariants`); nothing else reads payments' tables.

use tessera_store::{Statement, Store};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentFact {
    pub order_id: String,
    /// `authorising`, `authorised`, `declined`, `voided`, `captured` or `refunded`.
    pub status: String,
}

/// Money moved for an order: a capture or a refund, in minor units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoneyMoved {
    pub order_id: String,
    pub amount: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PaymentsFacts {
    pub payments: Vec<PaymentFact>,
    pub captures: Vec<MoneyMoved>,
    pub refunds: Vec<MoneyMoved>,
}

async fn moved(store: &Store, sql: &'static str) -> tessera_store::Result<Vec<MoneyMoved>> {
    store
        .query(Statement::new(sql))
        .await?
        .iter()
        .map(|row| Ok(MoneyMoved { order_id: row.text("order_id")?.to_owned(), amount: row.int("amount")? }))
        .collect()
}

/// Reads payments' facts from its store, as they are now.
pub async fn read(store: &Store) -> tessera_store::Result<PaymentsFacts> {
    let payments = store
        .query(Statement::new("SELECT order_id, status FROM payments"))
        .await?
        .iter()
        .map(|row| {
            Ok(PaymentFact {
                order_id: row.text("order_id")?.to_owned(),
                status: row.text("status")?.to_owned(),
            })
        })
        .collect::<tessera_store::Result<_>>()?;
    Ok(PaymentsFacts {
        payments,
        captures: moved(store, "SELECT order_id, amount FROM captures").await?,
        refunds: moved(store, "SELECT order_id, amount FROM refunds").await?,
    })
}
