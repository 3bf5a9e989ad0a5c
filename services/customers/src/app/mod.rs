//! The glue between customers' rules and their store: registration, profiles under optimistic
//! concurrency, and credential checks. Every change and the event announcing it are committed
//! in one unit of work, so consumers never miss a change nor hear of one that did not happen.

mod credentials;

use std::sync::Arc;

use tessera_contracts::Message;
use tessera_contracts::Personal;
use tessera_contracts::customers::{Address, CustomerRegistered, CustomerUpdated};
use tessera_kernel::{Clock, Envelope, HybridClock, IdGen, MessageKind, SubjectId, Timestamp};
use tessera_store::{Row, Statement, Store, StoreError};
use tessera_web::token::Actor;
use uuid::Uuid;

use crate::domain::{Email, Name, Password, PostalAddress};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Another customer registered with this email (compared case-insensitively).
    #[error("a customer with this email exists already")]
    Duplicate,
    #[error("no customer {0}")]
    NotFound(Uuid),
    #[error("the profile is at version {current}, not the one named")]
    Stale { current: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("stored data cannot be read: {0}")]
    Corrupt(String),
}

/// The fields of a profile a customer may change; `None` keeps the current value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProfileChanges {
    pub name: Option<Name>,
    pub address: Option<PostalAddress>,
}

/// A customer's profile as stored (without the password hash, which never leaves this layer).
#[derive(Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub address: Address,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

/// Personal data stays out of logs: only the id and version are shown.
impl std::fmt::Debug for Customer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Customer")
            .field("id", &self.id)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug)]
pub struct Customers {
    store: Store,
    ids: Arc<dyn IdGen>,
    clock: Arc<HybridClock>,
}

const CUSTOMER_COLUMNS: &str =
    "id, email, name, line1, city, postal_code, country, created_at, updated_at, version";

fn customer_from_row(row: &Row) -> Result<Customer, AppError> {
    let corrupt = |e: &dyn std::fmt::Display| AppError::Corrupt(e.to_string());
    let instant = |column: &str| -> Result<Timestamp, AppError> {
        let micros = row.int(column)?;
        u64::try_from(micros).map(Timestamp::from_micros).map_err(|e| corrupt(&e))
    };
    Ok(Customer {
        id: Uuid::parse_str(row.text("id")?).map_err(|e| corrupt(&e))?,
        email: row.text("email")?.to_owned(),
        name: row.text("name")?.to_owned(),
        address: Address {
            line1: row.text("line1")?.to_owned(),
            city: row.text("city")?.to_owned(),
            postal_code: row.text("postal_code")?.to_owned(),
            country: row.text("country")?.to_owned(),
        },
        created_at: instant("created_at")?,
        updated_at: instant("updated_at")?,
        version: row.int("version")?,
    })
}

fn micros(at: Timestamp) -> i64 {
    i64::try_from(at.as_micros()).unwrap_or(i64::MAX)
}

impl Customers {
    pub fn new(store: Store, ids: Arc<dyn IdGen>, clock: Arc<dyn Clock>) -> Self {
        Self { store, ids, clock: Arc::new(HybridClock::new(clock)) }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// An event about one customer: keyed by their id, so consumers see their changes in
    /// order, and with them as its subject, so the privacy layer knows whose data it carries.
    fn event<M: Message>(&self, customer_id: Uuid, message: &M) -> Result<Envelope, AppError> {
        let payload = serde_json::to_value(message).map_err(|e| AppError::Corrupt(e.to_string()))?;
        Ok(Envelope::new(
            &*self.ids,
            MessageKind::Event,
            M::NAME,
            crate::SERVICE,
            customer_id.to_string(),
            self.clock.now(),
            payload,
        )
        .with_version(M::VERSION)
        .about(SubjectId::from_uuid(customer_id)))
    }

    /// Registers a customer at version 1 and returns their new id. The email's normalised
    /// form is a UNIQUE column, so of two racing registrations with one address, one fails
    /// with `Duplicate`.
    pub async fn register(
        &self,
        email: Email,
        name: Name,
        password: Password,
        address: PostalAddress,
        actor: &Actor,
    ) -> Result<Uuid, AppError> {
        let id = self.ids.next_uuid();
        let password_hash = credentials::hash(password).await?;
        let now = micros(self.clock.now().wall());
        let address = address.into_address();
        let mut unit = self.store.begin();
        unit.execute(
            Statement::new(format!(
                "INSERT INTO customers ({CUSTOMER_COLUMNS}, email_key, password_hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 1, $9, $10)"
            ))
            .bind(id.to_string())
            .bind(email.as_str())
            .bind(name.as_str())
            .bind(address.line1.as_str())
            .bind(address.city.as_str())
            .bind(address.postal_code.as_str())
            .bind(address.country.as_str())
            .bind(now)
            .bind(email.key())
            .bind(password_hash),
        );
        let registered = CustomerRegistered {
            customer_id: id,
            email: Personal(email.as_str().to_owned()),
            name: Personal(name.into_string()),
            address: Personal(address),
            version: 1,
        };
        unit.send(&self.event(id, &registered)?)?;
        unit.audit(actor.audit("customer.register", format!("customer/{id}"), "ok", self.clock.now().wall()));
        match unit.commit().await {
            Ok(_) => {
                tracing::info!(customer_id = %id, "customer registered");
                Ok(id)
            }
            Err(StoreError::Constraint(_)) => Err(AppError::Duplicate),
            Err(error) => Err(error.into()),
        }
    }

    /// A profile read on someone's behalf: personal data, so the read is on the audit trail
    /// before the profile is handed out.
    pub async fn read_profile(&self, id: Uuid, actor: &Actor) -> Result<Option<Customer>, AppError> {
        let Some(customer) = self.profile(id).await? else { return Ok(None) };
        let mut unit = self.store.begin();
        unit.audit(actor.audit("customer.read", format!("customer/{id}"), "ok", self.clock.now().wall()));
        unit.commit().await?;
        Ok(Some(customer))
    }

    pub async fn profile(&self, id: Uuid) -> Result<Option<Customer>, AppError> {
        let rows = self
            .store
            .query(
                Statement::new(format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1"))
                    .bind(id.to_string()),
            )
            .await?;
        rows.first().map(customer_from_row).transpose()
    }

    /// Changes a profile if it is still at `expected_version` (`None`: whatever version it is
    /// at). The version guard is in the UPDATE itself, so two writers that read the same
    /// version cannot both succeed: the second gets `Stale`.
    pub async fn update(
        &self,
        id: Uuid,
        expected_version: Option<i64>,
        changes: ProfileChanges,
        actor: &Actor,
    ) -> Result<Customer, AppError> {
        let current = self.profile(id).await?.ok_or(AppError::NotFound(id))?;
        let version = expected_version.unwrap_or(current.version);
        if version != current.version {
            return Err(AppError::Stale { current: current.version });
        }
        let updated = Customer {
            name: changes.name.map_or(current.name, Name::into_string),
            address: changes.address.map_or(current.address, PostalAddress::into_address),
            updated_at: self.clock.now().wall(),
            version: version + 1,
            ..current
        };
        let mut unit = self.store.begin();
        unit.execute(
            Statement::new(
                "UPDATE customers SET name = $2, line1 = $3, city = $4, postal_code = $5, country = $6,
                 updated_at = $7, version = $8
                 WHERE id = $1 AND version = $9",
            )
            .bind(id.to_string())
            .bind(updated.name.as_str())
            .bind(updated.address.line1.as_str())
            .bind(updated.address.city.as_str())
            .bind(updated.address.postal_code.as_str())
            .bind(updated.address.country.as_str())
            .bind(micros(updated.updated_at))
            .bind(updated.version)
            .bind(version)
            .expect_rows(1, "stale_version"),
        );
        let event = CustomerUpdated {
            customer_id: id,
            name: Personal(updated.name.clone()),
            address: Personal(updated.address.clone()),
            version: updated.version,
        };
        unit.send(&self.event(id, &event)?)?;
        unit.audit(actor.audit("customer.update", format!("customer/{id}"), "ok", self.clock.now().wall()));
        match unit.commit().await {
            Ok(_) => Ok(updated),
            Err(StoreError::Rejected { .. }) => {
                let now = self.profile(id).await?.map_or(0, |c| c.version);
                Err(AppError::Stale { current: now })
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The customer whose email and password these are, or `None`. It takes one password
    /// verification whether or not the email belongs to anyone (and whatever was typed), so
    /// neither the answer nor its timing tells an unknown email from a wrong password.
    pub async fn check_credentials(
        &self,
        email: &str,
        password: &str,
        actor: &Actor,
    ) -> Result<Option<Uuid>, AppError> {
        let account = match Email::parse(email) {
            Ok(email) => {
                let rows = self
                    .store
                    .query(
                        Statement::new("SELECT id, password_hash FROM customers WHERE email_key = $1")
                            .bind(email.key()),
                    )
                    .await?;
                match rows.first() {
                    Some(row) => {
                        let id =
                            Uuid::parse_str(row.text("id")?).map_err(|e| AppError::Corrupt(e.to_string()))?;
                        Some((id, row.text("password_hash")?.to_owned()))
                    }
                    None => None,
                }
            }
            Err(_) => None,
        };
        // A password outside the policy can match no account; it is still verified (against
        // nothing) so that it costs the same, but never more than a policy-length one.
        let typed = match Password::parse(password) {
            Ok(password) => password.expose().to_vec(),
            Err(_) => Vec::new(),
        };
        let (id, stored) = match account {
            Some((id, hash)) if !typed.is_empty() => (Some(id), Some(hash)),
            _ => (None, None),
        };
        let matches = credentials::verify(typed, stored).await?;
        // Sign-ins to a real account are audited, refused ones too; an unknown email names
        // nobody to audit (and its text is personal data that must not sit in the trail).
        if let Some(id) = id {
            let outcome = if matches { "ok" } else { "refused" };
            let mut unit = self.store.begin();
            unit.audit(actor.audit(
                "customer.sign_in",
                format!("customer/{id}"),
                outcome,
                self.clock.now().wall(),
            ));
            unit.commit().await?;
        }
        Ok(id.filter(|_| matches))
    }
}
