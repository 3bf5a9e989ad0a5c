//! Files attached to tickets. The bytes live in an object store (a folder on the local disk,
//! or any S3-compatible store), sealed with the ticket's customer's data key, so shredding
//! the key leaves nothing readable there or in any backup of it. Only metadata sits in
//! support's database: the object's key, its size, the SHA-256 of the plain bytes (checked on
//! every download), the sniffed type, the file name (sealed too: it is the customer's) and
//! when it came.
//!
//! Objects are kept under `<customer>/<ticket>/<attachment>`, so an erasure also finds an
//! object whose row was never written. Uploads (`upload`) and downloads (`download`) stream:
//! no file is ever held whole.

use std::path::Path as FsPath;
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use tessera_kernel::Timestamp;
use tessera_store::{Row, Statement, UnitOfWork};
use uuid::Uuid;

use super::{AppError, Support, corrupt, timestamp};
use crate::domain::{AttachmentError, ContentType};

/// The part size S3 requires of every part of a multipart upload but the last.
const S3_PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts for stores without S3's minimum (a folder, memory): what an upload holds at most.
const SMALL_PART_BYTES: usize = 256 * 1024;

/// Where attachments' bytes are kept.
#[derive(Clone)]
pub struct AttachmentStore {
    pub(super) objects: Arc<dyn ObjectStore>,
    location: Arc<str>,
    /// Bytes an upload gathers before writing them as one part.
    pub(super) part_bytes: usize,
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
        let location = format!("file://{}", folder.display());
        Ok(Self { part_bytes: SMALL_PART_BYTES, ..Self::new(Arc::new(local), &location) })
    }

    /// In memory, for tests that do not look at attachments.
    pub fn in_memory() -> Self {
        let memory = Arc::new(object_store::memory::InMemory::new());
        Self { part_bytes: SMALL_PART_BYTES, ..Self::new(memory, "memory:") }
    }

    /// Any object store; `location` names it in logs. Uploads write parts of S3's minimum
    /// size, which every store takes.
    pub fn new(objects: Arc<dyn ObjectStore>, location: &str) -> Self {
        Self { objects, location: location.into(), part_bytes: S3_PART_BYTES }
    }

    /// The store itself (tests look at what is kept).
    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    /// Deletes an object; one already gone is fine (a retried erasure).
    pub(super) async fn delete(&self, key: &ObjectPath) -> Result<(), AppError> {
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

pub(super) const ATTACHMENT_COLUMNS: &str = "a.id, a.ticket_id, a.object_key, a.size, a.sha256, a.content_type, a.file_name, a.created_at, t.customer_id";

/// A SHA-256 digest as lowercase hex.
pub(super) fn hex(digest: &ring::digest::Digest) -> String {
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl Support {
    pub(super) async fn attachment_from_row(
        &self,
        row: &Row,
    ) -> Result<(Attachment, Uuid, ObjectPath), AppError> {
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
                     JOIN tickets t ON t.id = a.ticket_id
                     WHERE a.ticket_id = $1 AND a.state = 'stored' ORDER BY a.id"
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
        // The quota counts name the customer (and their tickets): they go too.
        unit.execute(
            Statement::new(
                "DELETE FROM attachment_usage WHERE scope = 'customer:' || $1
                 OR scope IN (SELECT 'ticket:' || id FROM tickets WHERE customer_id = $1)",
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
