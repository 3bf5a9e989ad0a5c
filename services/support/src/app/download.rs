//! An attachment on its way out, opened a chunk at a time as the object store hands its
//! bytes over. The first chunk is opened before anything is answered, so an object that is
//! not this attachment's (its chunks are bound to its key) is an error status rather than a
//! cut download; a later chunk that does not open, or a file that does not match its hash and
//! size, ends the body with an error, which a client sees as an incomplete download.
//!
//! Objects sealed whole, before uploads streamed (`v1.`), are still read: whole, as they were
//! written, at most the largest file.

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use tessera_store::Statement;
use tessera_vault::{STREAM_HEADER_LEN, STREAM_PREFIX, StreamOpener, VaultError};
use tessera_web::token::Actor;
use uuid::Uuid;

use super::attachments::{ATTACHMENT_COLUMNS, hex};
use super::{AppError, Attachment, Support, corrupt};
use crate::domain::MAX_ATTACHMENT_BYTES;

/// An attachment's plain bytes, as they are opened.
pub type FileStream = BoxStream<'static, Result<Bytes, AppError>>;

type SealedStream = BoxStream<'static, object_store::Result<Bytes>>;

/// What a download checks as it goes.
struct Opening {
    source: SealedStream,
    /// `None` once the last chunk is opened.
    opener: Option<StreamOpener>,
    digest: ring::digest::Context,
    size: u64,
    expected: Attachment,
}

impl Opening {
    /// The next plain bytes; `None` at the end, once the file matched its hash and size.
    async fn next(&mut self) -> Result<Option<Bytes>, AppError> {
        let id = self.expected.id;
        let unreadable = |error: VaultError| corrupt(format!("attachment {id} does not open: {error}"));
        while let Some(opener) = self.opener.as_mut() {
            let plain = match self.source.try_next().await.map_err(AppError::Objects)? {
                Some(sealed) => opener.push(&sealed).map_err(unreadable)?,
                None => {
                    let last = self.opener.take().map(StreamOpener::finish).transpose();
                    last.map_err(unreadable)?.unwrap_or_default()
                }
            };
            self.digest.update(&plain);
            self.size += plain.len() as u64;
            if self.opener.is_none() {
                self.check()?;
            }
            if !plain.is_empty() {
                return Ok(Some(Bytes::from(plain)));
            }
        }
        Ok(None)
    }

    fn check(&self) -> Result<(), AppError> {
        let digest = hex(&self.digest.clone().finish());
        if digest != self.expected.sha256 || self.size != self.expected.size {
            return Err(corrupt(format!("attachment {} does not match its hash", self.expected.id)));
        }
        Ok(())
    }
}

impl Support {
    /// An attachment and its plain bytes, opened and checked against the hash taken at upload
    /// as they stream. Its reading is on the audit trail (the bytes are the customer's).
    pub async fn download(
        &self,
        ticket: Uuid,
        attachment: Uuid,
        actor: &Actor,
    ) -> Result<(Attachment, FileStream), AppError> {
        let rows = self
            .store
            .query(
                Statement::new(format!(
                    "SELECT {ATTACHMENT_COLUMNS} FROM ticket_attachments a JOIN tickets t ON t.id = a.ticket_id
                     WHERE a.ticket_id = $1 AND a.id = $2 AND a.state = 'stored'"
                ))
                .bind(ticket.to_string())
                .bind(attachment.to_string()),
            )
            .await?;
        let row = rows.first().ok_or(AppError::UnknownAttachment(attachment))?;
        let (found, customer, key) = self.attachment_from_row(row).await?;
        let mut source = match self.attachments.objects.get(&key).await {
            Ok(object) => object.into_stream(),
            Err(object_store::Error::NotFound { .. }) => {
                return Err(corrupt(format!("the object of attachment {attachment} is missing")));
            }
            Err(error) => return Err(AppError::Objects(error)),
        };
        // The first bytes say how the object was sealed.
        let mut head = Vec::with_capacity(STREAM_HEADER_LEN);
        while head.len() < STREAM_HEADER_LEN {
            match source.try_next().await.map_err(AppError::Objects)? {
                Some(bytes) => head.extend_from_slice(&bytes),
                None => break,
            }
        }
        let subject = customer.to_string();
        let file: FileStream = if head.starts_with(STREAM_PREFIX) && head.len() >= STREAM_HEADER_LEN {
            let stream_key = self
                .vault
                .stream_opening_key(&subject)
                .await?
                .ok_or(AppError::Vault(VaultError::Shredded))?;
            let unreadable = |error| corrupt(format!("attachment {attachment} does not open: {error}"));
            let mut opener =
                stream_key.opener(key.as_ref(), &head[..STREAM_HEADER_LEN]).map_err(unreadable)?;
            let first = opener.push(&head[STREAM_HEADER_LEN..]).map_err(unreadable)?;
            let mut opening = Opening {
                source,
                opener: Some(opener),
                digest: ring::digest::Context::new(&ring::digest::SHA256),
                size: 0,
                expected: found.clone(),
            };
            opening.digest.update(&first);
            opening.size = first.len() as u64;
            // Open the first chunk now: an object that is not this attachment's fails here.
            let first = if first.is_empty() { opening.next().await? } else { Some(Bytes::from(first)) };
            let rest = futures_util::stream::try_unfold(opening, |mut opening| async move {
                let next = opening.next().await;
                if let Err(error) = &next {
                    tracing::error!(%error, "an attachment's download was cut short");
                }
                next.map(|bytes| bytes.map(|bytes| (bytes, opening)))
            });
            futures_util::stream::iter(first.map(Ok)).chain(rest).boxed()
        } else {
            let whole = self.whole(&found, head, source, &subject).await?;
            futures_util::stream::iter([Ok(whole)]).boxed()
        };
        let mut unit = self.store.begin();
        let resource = format!("ticket/{ticket}/attachment/{attachment}");
        unit.audit(actor.audit("ticket.attachment.read", resource, "ok", self.clock.now().wall()));
        unit.commit().await?;
        Ok((found, file))
    }

    /// An object sealed whole (`v1.`), opened and checked.
    async fn whole(
        &self,
        found: &Attachment,
        mut sealed: Vec<u8>,
        mut source: SealedStream,
        subject: &str,
    ) -> Result<Bytes, AppError> {
        while let Some(bytes) = source.try_next().await.map_err(AppError::Objects)? {
            sealed.extend_from_slice(&bytes);
            if sealed.len() > MAX_ATTACHMENT_BYTES + 1024 {
                return Err(corrupt(format!("the object of attachment {} is too large", found.id)));
            }
        }
        let bytes = match self.vault.open_bytes(subject, &sealed).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Err(AppError::Vault(VaultError::Shredded)),
            Err(error @ (VaultError::Decrypt | VaultError::Malformed(_))) => {
                return Err(corrupt(format!("attachment {} does not open: {error}", found.id)));
            }
            Err(error) => return Err(error.into()),
        };
        let digest = hex(&ring::digest::digest(&ring::digest::SHA256, &bytes));
        if digest != found.sha256 || bytes.len() as u64 != found.size {
            return Err(corrupt(format!("attachment {} does not match its hash", found.id)));
        }
        Ok(Bytes::from(bytes))
    }
}
