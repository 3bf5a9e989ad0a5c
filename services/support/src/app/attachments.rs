//! Files attached to tickets. The bytes live in an object store (a folder on the local disk,
//! or any S3-compatible store), sealed with the ticket's customer's data key, so shredding
//! the key leaves nothing readable there or in any backup of it. Only metadata sits in
//! support's database: the object's key, its size, the SHA-256 of the plain bytes (checked on
//! every download), the sniffed type, the file name (sealed too: it is the customer's) and
//! when it came.
//!
//! Objects are kept under `<customer>/<ticket>/<attachment>`, so an erasure also finds an
//! object whose row was never written.

use std::path::Path as FsPath;
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use tessera_kernel::Timestamp;
use tessera_store::{Row, Statement, UnitOfWork};
use tessera_web::token::Actor;
use uuid::Uuid;

use super::{AppError, Support, corrupt, micros, timestamp};
use crate::domain::{AttachmentError, ContentType, file_name};
use crate::personal_data;

/// Where attachments' bytes are kept.
#[derive(Clone)]
pub struct AttachmentStore {
    objects: Arc<dyn ObjectStore>,
    location: Arc<str>,
}

impl std::fmt::Debug for AttachmentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentStore").field("location", &self.location).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AttachmentStoreError {
    #[error("attachments URL `{0}`: use file:///absolute/folder or s3://bucket")]
    Url(String),
    #[error("cannot create the attachments folder {path}: {source}")]
    Folder { path: String, source: std::io::Error },
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
}

impl AttachmentStore {
    /// `file:///absolute/folder` (created if missing), or `s3://bucket` configured by the
    /// usual `AWS_*` environment (`AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, ...).
    pub fn open(url: &str) -> Result<Self, AttachmentStoreError> {
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(AttachmentStoreError::Url(url.to_owned()));
            }
            return Self::local(FsPath::new(path));
        }
        if url.starts_with("s3://") || url.starts_with("s3a://") {
            let s3 = object_store::aws::AmazonS3Builder::from_env().with_url(url).build()?;
            return Ok(Self::new(Arc::new(s3), url));
        }
        Err(AttachmentStoreError::Url(url.to_owned()))
    }

    /// A folder on the local disk (created if missing).
    pub fn local(folder: &FsPath) -> Result<Self, AttachmentStoreError> {
        let failed = |source| AttachmentStoreError::Folder { path: folder.display().to_string(), source };
        std::fs::create_dir_all(folder).map_err(failed)?;
        let local = object_store::local::LocalFileSystem::new_with_prefix(folder)?;
        Ok(Self::new(Arc::new(local), &format!("file://{}", folder.display())))
    }

    /// In memory, for tests that do not look at attachments.
    pub fn in_memory() -> Self {
        Self::new(Arc::new(object_store::memory::InMemory::new()), "memory:")
    }

    /// Any object store; `location` names it in logs.
    pub fn new(objects: Arc<dyn ObjectStore>, location: &str) -> Self {
        Self { objects, location: location.into() }
    }

    /// The store itself (tests look at what is kept).
    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    /// Deletes an object; one already gone is fine (a retried erasure).
    async fn delete(&self, key: &ObjectPath) -> Result<(), AppError> {
        match self.objects.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(AppError::Objects(error)),
        }
    }
}

/// An attachment's metadata, its file name opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub file_name: String,
    pub content_type: ContentType,
    pub size: u64,
    /// SHA-256 of the plain bytes, lowercase hex.
    pub sha256: String,
    pub created_at: Timestamp,
}

const ATTACHMENT_COLUMNS: &str = "a.id, a.ticket_id, a.object_key, a.size, a.sha256, a.content_type, a.file_name, a.created_at, t.customer_id";

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl Support {
    /// Attaches a file to a ticket. `sent_name` is the client's file name; the type is
    /// sniffed from `bytes`.
    pub async fn attach(
        &self,
        ticket: Uuid,
        sent_name: Option<&str>,
        bytes: &[u8],
        actor: &Actor,
    ) -> Result<Attachment, AppError> {
        let content_type = ContentType::sniff(bytes)?;
        let found = self.ticket(ticket).await?.ok_or(AppError::UnknownTicket(ticket))?;
        let customer = found.customer_id;
        let name = file_name(sent_name);
        let id = Uuid::now_v7();
        let key = ObjectPath::from(format!("{customer}/{ticket}/{id}"));
        let sha256 = sha256_hex(bytes);
        let sealed =
            self.vault.seal_field_bytes(&personal_data::ATTACHMENT, &customer.to_string(), bytes).await?;
        let sealed_name = self.seal(&personal_data::ATTACHMENT_NAME, customer, &name).await?;
        let now = self.clock.now().wall();
        // The object first, then its row: a crash between the two leaves an object without a
        // row (unreachable, and deleted with the customer's erasure, which lists their
        // prefix), never a row without its object.
        self.attachments.objects.put(&key, sealed.into()).await.map_err(AppError::Objects)?;
        let size = bytes.len() as u64;
        let mut unit = self.store.begin();
        unit.execute(
            Statement::new(
                "INSERT INTO ticket_attachments
                   (id, ticket_id, object_key, size, sha256, content_type, file_name, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id.to_string())
            .bind(ticket.to_string())
            .bind(key.to_string())
            .bind(i64::try_from(size).unwrap_or(i64::MAX))
            .bind(sha256.as_str())
            .bind(content_type.as_mime())
            .bind(sealed_name.as_str())
            .bind(micros(now)),
        );
        let resource = format!("ticket/{ticket}/attachment/{id}");
        unit.audit(actor.audit("ticket.attach", resource, "ok", now));
        unit.commit().await?;
        Ok(Attachment { id, ticket_id: ticket, file_name: name, content_type, size, sha256, created_at: now })
    }

    async fn attachment_from_row(&self, row: &Row) -> Result<(Attachment, Uuid, ObjectPath), AppError> {
        let customer: Uuid = row.text("customer_id")?.parse().map_err(corrupt)?;
        let attachment = Attachment {
            id: row.text("id")?.parse().map_err(corrupt)?,
            ticket_id: row.text("ticket_id")?.parse().map_err(corrupt)?,
            file_name: self.open_text(customer, row.text("file_name")?).await?,
            content_type: ContentType::parse(row.text("content_type")?)
                .ok_or_else(|| corrupt("unknown attachment type"))?,
            size: u64::try_from(row.int("size")?).map_err(corrupt)?,
            sha256: row.text("sha256")?.to_owned(),
            created_at: timestamp(row, "created_at")?,
        };
        Ok((attachment, customer, ObjectPath::from(row.text("object_key")?)))
    }

    /// A ticket's attachments, oldest first.
    pub async fn attachments(&self, ticket: Uuid) -> Result<Vec<Attachment>, AppError> {
        let rows = self
            .store
            .query(
                Statement::new(format!(
                    "SELECT {ATTACHMENT_COLUMNS} FROM ticket_attachments a
                     JOIN tickets t ON t.id = a.ticket_id WHERE a.ticket_id = $1 ORDER BY a.id"
                ))
                .bind(ticket.to_string()),
            )
            .await?;
        let mut attachments = Vec::with_capacity(rows.len());
        for row in &rows {
            attachments.push(self.attachment_from_row(row).await?.0);
        }
        Ok(attachments)
    }

    /// An attachment with its plain bytes, checked against the hash taken at upload. Its
    /// reading is on the audit trail (the bytes are the customer's).
    pub async fn download(
        &self,
        ticket: Uuid,
        attachment: Uuid,
        actor: &Actor,
    ) -> Result<(Attachment, Vec<u8>), AppError> {
        let rows = self
            .store
            .query(
                Statement::new(format!(
                    "SELECT {ATTACHMENT_COLUMNS} FROM ticket_attachments a
                     JOIN tickets t ON t.id = a.ticket_id WHERE a.ticket_id = $1 AND a.id = $2"
                ))
                .bind(ticket.to_string())
                .bind(attachment.to_string()),
            )
            .await?;
        let row = rows.first().ok_or(AppError::UnknownAttachment(attachment))?;
        let (found, customer, key) = self.attachment_from_row(row).await?;
        let sealed = match self.attachments.objects.get(&key).await {
            Ok(object) => object.bytes().await.map_err(AppError::Objects)?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(corrupt(format!("the object of attachment {attachment} is missing")));
            }
            Err(error) => return Err(AppError::Objects(error)),
        };
        let bytes = self
            .vault
            .open_bytes(&customer.to_string(), &sealed)
            .await?
            .ok_or(AppError::Vault(tessera_vault::VaultError::Shredded))?;
        if sha256_hex(&bytes) != found.sha256 || bytes.len() as u64 != found.size {
            return Err(corrupt(format!("attachment {attachment} does not match its hash")));
        }
        let mut unit = self.store.begin();
        let resource = format!("ticket/{ticket}/attachment/{attachment}");
        unit.audit(actor.audit("ticket.attachment.read", resource, "ok", self.clock.now().wall()));
        unit.commit().await?;
        Ok((found, bytes))
    }

    /// An erased customer's attachments: deletes their objects now (those of their rows, and
    /// any left under their prefix without a row) and their rows with `unit`. Deleting a
    /// missing object succeeds, so a retried or redelivered erasure does the same again
    /// harmlessly; the rows go only when the unit commits, after every object is gone.
    pub(crate) async fn erase_attachments(
        &self,
        customer: Uuid,
        unit: &mut UnitOfWork,
    ) -> Result<(), AppError> {
        let rows = unit
            .query(
                Statement::new(
                    "SELECT a.object_key FROM ticket_attachments a
                     JOIN tickets t ON t.id = a.ticket_id WHERE t.customer_id = $1",
                )
                .bind(customer.to_string()),
            )
            .await?;
        for row in &rows {
            self.attachments.delete(&ObjectPath::from(row.text("object_key")?)).await?;
        }
        let prefix = ObjectPath::from(customer.to_string());
        let left: Vec<_> =
            self.attachments.objects.list(Some(&prefix)).try_collect().await.map_err(AppError::Objects)?;
        for object in left {
            self.attachments.delete(&object.location).await?;
        }
        unit.execute(
            Statement::new(
                "DELETE FROM ticket_attachments
                 WHERE ticket_id IN (SELECT id FROM tickets WHERE customer_id = $1)",
            )
            .bind(customer.to_string()),
        );
        Ok(())
    }
}

impl From<AttachmentError> for AppError {
    fn from(error: AttachmentError) -> Self {
        AppError::Attachment(error)
    }
}
