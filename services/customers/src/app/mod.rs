//! The glue between customers' rules and their store: registration, profiles under optimistic
//! concurrency, and credential checks. Every change and the event announcing it are committed
//! in one unit of work, so consumers never miss a change nor hear of one that did not happen.

mod credentials;

use std::sync::Arc;

use tessera_contracts::Personal;
use tessera_contracts::customers::{
    Address, CustomerErased, CustomerRegistered, CustomerUpdated, ErasureDone, profile,
};
use tessera_contracts::{EnvelopeBuilder, Message, envelope};
use tessera_kernel::personal::PersonalField;
use tessera_kernel::{Clock, Envelope, HybridClock, IdGen, SubjectId, Timestamp};
use tessera_store::{Row, Statement, Store, StoreError};
use tessera_vault::{Sealer, VaultError};
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
    /// As many password hashes are under way as the process allows.
    #[error("too many password checks at once")]
    Busy,
    #[error("stored data cannot be read: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Vault(VaultError),
}

impl From<VaultError> for AppError {
    fn from(error: VaultError) -> Self {
        match error {
            VaultError::Store(error) => AppError::Store(error),
            other => AppError::Vault(other),
        }
    }
}

/// An erasure and how far every service has got with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Erasure {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub requested_at: Timestamp,
    /// Each participating service, and when it reported done.
    pub services: Vec<(String, Option<Timestamp>)>,
}

impl Erasure {
    pub fn complete(&self) -> bool {
        self.services.iter().all(|(_, done)| done.is_some())
    }
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

/// Personal fields (email, name, address) are stored and announced sealed with the customer's
/// own data key from the vault, so shredding that key erases them everywhere they went,
/// backups and event streams included. Emails are found by a keyed hash (blind index).
#[derive(Clone, Debug)]
pub struct Customers {
    store: Store,
    vault: Arc<dyn Sealer>,
    ids: Arc<dyn IdGen>,
    clock: Arc<HybridClock>,
}

const CUSTOMER_COLUMNS: &str =
    "id, email, name, line1, city, postal_code, country, created_at, updated_at, version";

/// A row as stored: personal fields still sealed.
fn sealed_customer_from_row(row: &Row) -> Result<Customer, AppError> {
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
    pub fn new(store: Store, vault: Arc<dyn Sealer>, ids: Arc<dyn IdGen>, clock: Arc<dyn Clock>) -> Self {
        Self { store, vault, ids, clock: Arc::new(HybridClock::new(clock)) }
    }

    /// `value` of the declared `field` sealed with the customer's key (refused if the field
    /// is not declared sealed: the data map says what happens here).
    async fn seal(&self, field: &PersonalField, id: Uuid, value: &str) -> Result<String, AppError> {
        Ok(self.vault.seal_field(field, &id.to_string(), value).await?)
    }

    /// The plain value of a sealed field; `None` once the customer is erased.
    async fn open(&self, id: Uuid, text: &str) -> Result<Option<String>, AppError> {
        Ok(self.vault.open(&id.to_string(), text).await?)
    }

    async fn seal_address(&self, id: Uuid, address: &Address) -> Result<Address, AppError> {
        Ok(Address {
            line1: self.seal(&profile::ADDRESS_LINE1, id, &address.line1).await?,
            city: self.seal(&profile::CITY, id, &address.city).await?,
            postal_code: self.seal(&profile::POSTAL_CODE, id, &address.postal_code).await?,
            country: self.seal(&profile::COUNTRY, id, &address.country).await?,
        })
    }

    /// Opens every personal field of a stored row; `None` if the customer was erased.
    async fn unseal(&self, sealed: Customer) -> Result<Option<Customer>, AppError> {
        let id = sealed.id;
        let fields = [
            &sealed.email,
            &sealed.name,
            &sealed.address.line1,
            &sealed.address.city,
            &sealed.address.postal_code,
            &sealed.address.country,
        ];
        let mut plain = Vec::with_capacity(fields.len());
        for field in fields {
            match self.open(id, field).await? {
                Some(value) => plain.push(value),
                None => return Ok(None),
            }
        }
        let mut plain = plain.into_iter();
        let mut next = || plain.next().unwrap_or_default();
        Ok(Some(Customer {
            email: next(),
            name: next(),
            address: Address { line1: next(), city: next(), postal_code: next(), country: next() },
            ..sealed
        }))
    }

    /// The keyed hash an email is looked up by; the address itself is never stored in clear.
    fn email_key(&self, email: &Email) -> String {
        self.vault.blind_index("customers.email", email.key())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// `message` in its envelope, stamped with this service's ids and clock.
    fn build<M: Message>(&self, envelope: EnvelopeBuilder<'_, M>) -> Result<Envelope, AppError> {
        envelope.build(&*self.ids, self.clock.now()).map_err(|e| AppError::Corrupt(e.to_string()))
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
        let address = self.seal_address(id, &address.into_address()).await?;
        let sealed_email = self.seal(&profile::EMAIL, id, email.as_str()).await?;
        let sealed_name = self.seal(&profile::NAME, id, name.as_str()).await?;
        let mut unit = self.store.begin();
        unit.execute(
            Statement::new(format!(
                "INSERT INTO customers ({CUSTOMER_COLUMNS}, email_key, password_hash, sealed)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 1, $9, $10, 1)"
            ))
            .bind(id.to_string())
            .bind(sealed_email.as_str())
            .bind(sealed_name.as_str())
            .bind(address.line1.as_str())
            .bind(address.city.as_str())
            .bind(address.postal_code.as_str())
            .bind(address.country.as_str())
            .bind(now)
            .bind(self.email_key(&email))
            .bind(password_hash),
        );
        let registered = CustomerRegistered {
            customer_id: id,
            email: Personal(sealed_email),
            name: Personal(sealed_name),
            address: Personal(address),
            version: 1,
        };
        // Keyed by the customer, so consumers see their changes in order, and about them, so the
        // privacy layer knows whose data it carries; likewise below.
        unit.send(&self.build(envelope(&registered, crate::SERVICE, id).about(SubjectId::from_uuid(id)))?)?;
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

    /// A profile read on someone's behalf: personal data, so the read goes on the audit trail.
    /// Its record joins the store's next group commit; the reader does not wait for it
    /// (docs/decisions/0015-read-audits-do-not-wait.md).
    pub async fn read_profile(&self, id: Uuid, actor: &Actor) -> Result<Option<Customer>, AppError> {
        let Some(customer) = self.profile(id).await? else { return Ok(None) };
        let mut unit = self.store.begin();
        unit.audit(actor.audit("customer.read", format!("customer/{id}"), "ok", self.clock.now().wall()));
        unit.commit_detached().await;
        Ok(Some(customer))
    }

    /// A profile with its personal fields opened; `None` for an unknown or erased customer.
    pub async fn profile(&self, id: Uuid) -> Result<Option<Customer>, AppError> {
        let rows = self
            .store
            .query(
                Statement::new(format!(
                    "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1 AND erased_at IS NULL"
                ))
                .bind(id.to_string()),
            )
            .await?;
        match rows.first().map(sealed_customer_from_row).transpose()? {
            Some(sealed) => self.unseal(sealed).await,
            None => Ok(None),
        }
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
        let sealed_name = self.seal(&profile::NAME, id, &updated.name).await?;
        let sealed_address = self.seal_address(id, &updated.address).await?;
        let mut unit = self.store.begin();
        unit.execute(
            Statement::new(
                "UPDATE customers SET name = $2, line1 = $3, city = $4, postal_code = $5, country = $6,
                 updated_at = $7, version = $8
                 WHERE id = $1 AND version = $9 AND erased_at IS NULL",
            )
            .bind(id.to_string())
            .bind(sealed_name.as_str())
            .bind(sealed_address.line1.as_str())
            .bind(sealed_address.city.as_str())
            .bind(sealed_address.postal_code.as_str())
            .bind(sealed_address.country.as_str())
            .bind(micros(updated.updated_at))
            .bind(updated.version)
            .bind(version)
            .expect_rows(1, "stale_version"),
        );
        let event = CustomerUpdated {
            customer_id: id,
            name: Personal(sealed_name),
            address: Personal(sealed_address),
            version: updated.version,
        };
        unit.send(&self.build(envelope(&event, crate::SERVICE, id).about(SubjectId::from_uuid(id)))?)?;
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
                        Statement::new(
                            "SELECT id, password_hash FROM customers WHERE email_key = $1 AND erased_at IS NULL",
                        )
                        .bind(self.email_key(&email)),
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

impl Customers {
    /// Forgets a customer: their data key is shredded first (from then on nothing sealed with
    /// it opens anywhere, events and backups included), then the row is blanked, the erasure
    /// recorded, and `CustomerErased` announced, in one unit. Asking again returns the same
    /// erasure. Returns `None` for a customer who never existed.
    pub async fn erase(&self, id: Uuid, actor: &Actor) -> Result<Option<Uuid>, AppError> {
        if let Some(erasure) = self.erasure(id).await? {
            return Ok(Some(erasure.id));
        }
        let exists = self
            .store
            .query(Statement::new("SELECT id FROM customers WHERE id = $1").bind(id.to_string()))
            .await?;
        if exists.is_empty() {
            return Ok(None);
        }
        // Shred before the commit: if the commit fails, asking again finds the key gone and
        // finishes the rest; the reverse order could leave a committed erasure with a live key.
        self.vault.shred(&id.to_string()).await?;
        let erasure_id = self.ids.next_uuid();
        let now = micros(self.clock.now().wall());
        let mut unit = self.store.begin();
        unit.execute(
            Statement::new(
                "UPDATE customers SET email = $2, name = $2, line1 = $2, city = $2, postal_code = $2,
                 country = $2, password_hash = '', email_key = $3, erased_at = $4
                 WHERE id = $1",
            )
            .bind(id.to_string())
            .bind(tessera_vault::ERASED)
            .bind(format!("erased:{id}"))
            .bind(now),
        );
        unit.execute(
            Statement::new("INSERT INTO erasures (id, customer_id, requested_at) VALUES ($1, $2, $3)")
                .bind(erasure_id.to_string())
                .bind(id.to_string())
                .bind(now),
        );
        unit.execute(
            Statement::new("INSERT INTO erasure_progress (erasure_id, service, done_at) VALUES ($1, $2, $3)")
                .bind(erasure_id.to_string())
                .bind(crate::SERVICE)
                .bind(now),
        );
        let erased = CustomerErased { customer_id: id, erasure_id };
        unit.send(&self.build(envelope(&erased, crate::SERVICE, id).about(SubjectId::from_uuid(id)))?)?;
        unit.audit(actor.audit("customer.erase", format!("customer/{id}"), "ok", self.clock.now().wall()));
        match unit.commit().await {
            Ok(_) => {
                tracing::info!(customer_id = %id, %erasure_id, "customer erased");
                Ok(Some(erasure_id))
            }
            // Two erasures raced; the other one was recorded.
            Err(StoreError::Constraint(_)) => Ok(self.erasure(id).await?.map(|e| e.id)),
            Err(error) => Err(error.into()),
        }
    }

    /// The customer's erasure and every service's progress with it.
    pub async fn erasure(&self, customer_id: Uuid) -> Result<Option<Erasure>, AppError> {
        let corrupt = |e: &dyn std::fmt::Display| AppError::Corrupt(e.to_string());
        let rows = self
            .store
            .query(
                Statement::new("SELECT id, requested_at FROM erasures WHERE customer_id = $1")
                    .bind(customer_id.to_string()),
            )
            .await?;
        let Some(row) = rows.first() else { return Ok(None) };
        let id = Uuid::parse_str(row.text("id")?).map_err(|e| corrupt(&e))?;
        let requested_at =
            Timestamp::from_micros(u64::try_from(row.int("requested_at")?).map_err(|e| corrupt(&e))?);
        let done = self
            .store
            .query(
                Statement::new("SELECT service, done_at FROM erasure_progress WHERE erasure_id = $1")
                    .bind(id.to_string()),
            )
            .await?;
        let mut services = Vec::new();
        for service in
            std::iter::once(crate::SERVICE).chain(tessera_contracts::customers::ERASURE_PARTICIPANTS)
        {
            let at = done
                .iter()
                .find(|r| r.text("service").is_ok_and(|s| s == service))
                .map(|r| r.int("done_at"))
                .transpose()?
                .and_then(|micros| u64::try_from(micros).ok())
                .map(Timestamp::from_micros);
            services.push((service.to_owned(), at));
        }
        Ok(Some(Erasure { id, customer_id, requested_at, services }))
    }

    /// Seals what an older version stored in clear (rows from before encryption), so an
    /// upgraded database holds no personal data in clear either. Returns the rows sealed.
    pub async fn seal_legacy_rows(&self) -> Result<u64, AppError> {
        let rows = self
            .store
            .query(Statement::new(format!(
                "SELECT {CUSTOMER_COLUMNS}, email_key FROM customers WHERE sealed = 0 AND erased_at IS NULL"
            )))
            .await?;
        let mut sealed = 0;
        for row in &rows {
            let plain = sealed_customer_from_row(row)?;
            let id = plain.id;
            let email = Email::parse(&plain.email).map_err(|e| AppError::Corrupt(e.to_string()))?;
            let address = self.seal_address(id, &plain.address).await?;
            let mut unit = self.store.begin();
            unit.execute(
                Statement::new(
                    "UPDATE customers SET email = $2, name = $3, line1 = $4, city = $5, postal_code = $6,
                     country = $7, email_key = $8, sealed = 1 WHERE id = $1 AND sealed = 0",
                )
                .bind(id.to_string())
                .bind(self.seal(&profile::EMAIL, id, &plain.email).await?)
                .bind(self.seal(&profile::NAME, id, &plain.name).await?)
                .bind(address.line1)
                .bind(address.city)
                .bind(address.postal_code)
                .bind(address.country)
                .bind(self.email_key(&email)),
            );
            unit.commit().await?;
            sealed += 1;
        }
        Ok(sealed)
    }
}

/// Services report their part of an erasure done; the progress is kept per erasure.
#[async_trait::async_trait]
impl tessera_bus::Handler for Customers {
    fn wants(&self, message: &Envelope) -> bool {
        message.name == ErasureDone::NAME
    }

    async fn handle(
        &self,
        message: &Envelope,
        unit: &mut tessera_store::UnitOfWork,
    ) -> Result<(), tessera_bus::HandlerError> {
        if !self.wants(message) {
            return Ok(());
        }
        let done: ErasureDone = tessera_bus::payload(message)?;
        if !tessera_contracts::customers::ERASURE_PARTICIPANTS.contains(&done.service.as_str()) {
            return Err(tessera_bus::HandlerError::rejected(format!(
                "{} is not a participant of erasures",
                done.service
            )));
        }
        unit.execute(
            Statement::new(
                "INSERT INTO erasure_progress (erasure_id, service, done_at) VALUES ($1, $2, $3)
                 ON CONFLICT (erasure_id, service) DO NOTHING",
            )
            .bind(done.erasure_id.to_string())
            .bind(done.service)
            .bind(micros(self.clock.now().wall())),
        );
        Ok(())
    }
}
