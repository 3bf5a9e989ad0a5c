//! An upload as it streams: each piece is sniffed, hashed, sealed (a chunk at a time, with the
//! customer's key) and written to the object store as a multipart upload, so no file is held
//! whole; an upload holds at most one sealed chunk and one part.
//!
//! The quotas are kept race-free by reserving before any byte is taken: one unit of work
//! raises the ticket's and the customer's counts in `attachment_usage` with conditional
//! updates (`... WHERE bytes + reserved <= limit`) and writes the attachment's row as
//! `pending`. Both backends take a row lock on the updated count, and PostgreSQL checks the
//! condition again against the committed count once the lock is free, so two uploads that
//! together do not fit cannot both reserve. When the file is in, one unit shrinks the
//! reservation to the file's size and marks the row `stored`; on any failure the multipart
//! upload is aborted and the reservation released. An upload dropped midway (its client
//! gone) releases from a task of its own; one cut off by a stop of support is released by the
//! customer's next upload, an hour on.

use std::sync::Arc;

use bytes::Bytes;
use object_store::WriteMultipart;
use object_store::path::Path as ObjectPath;
use tessera_store::{Statement, StoreError};
use tessera_vault::StreamSealer;
use tessera_web::token::Actor;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use uuid::Uuid;

use super::attachments::hex;
use super::{AppError, Attachment, Support, micros};
use crate::domain::{AttachmentError, AttachmentLimits, QuotaExceeded, Sniffer, file_name};
use crate::personal_data;

/// Room for one upload among those this process streams at once.
#[derive(Debug)]
pub struct UploadPermit {
    _slot: OwnedSemaphorePermit,
}

/// The uploads this process streams at once.
#[derive(Clone, Debug)]
pub(super) struct UploadSlots(Arc<Semaphore>);

impl UploadSlots {
    pub(super) fn new(limits: &AttachmentLimits) -> Self {
        Self(Arc::new(Semaphore::new(limits.concurrent_uploads.max(1))))
    }
}

/// What an upload reserved, to shrink or release.
#[derive(Clone, Debug)]
struct Reservation {
    attachment: Uuid,
    ticket: Uuid,
    customer: Uuid,
    bytes: u64,
}

/// An upload pending for this long was cut off by a stop of support (a transfer times out
/// long before: the gateway gives one five minutes).
const STALE_AFTER_MICROS: i64 = 60 * 60 * 1_000_000;

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// One file on its way in. Call [`write`](Self::write) with each piece, then
/// [`finish`](Self::finish), or [`abort`](Self::abort) on a failure of the caller's.
pub struct Upload {
    support: Support,
    reservation: Reservation,
    key: ObjectPath,
    actor: Actor,
    sniffer: Sniffer,
    digest: ring::digest::Context,
    sealer: Option<StreamSealer>,
    /// `None` once the upload is finished or aborted.
    writer: Option<WriteMultipart>,
    settled: bool,
    _permit: UploadPermit,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("key", &self.key)
            .field("reservation", &self.reservation)
            .finish_non_exhaustive()
    }
}

impl Support {
    /// Room for one more upload, or [`AppError::Busy`] while as many stream as the limits allow.
    pub fn upload_permit(&self) -> Result<UploadPermit, AppError> {
        match self.uploads.0.clone().try_acquire_owned() {
            Ok(slot) => Ok(UploadPermit { _slot: slot }),
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => Err(AppError::Busy),
        }
    }

    /// Starts an upload to `ticket`: reserves its room in the quotas (`declared_length`, the
    /// body's, or the largest file without one) and opens the multipart upload.
    pub async fn begin_upload(
        &self,
        ticket: Uuid,
        declared_length: Option<u64>,
        permit: UploadPermit,
        actor: &Actor,
    ) -> Result<Upload, AppError> {
        let found = self.ticket(ticket).await?.ok_or(AppError::UnknownTicket(ticket))?;
        let customer = found.customer_id;
        let id = Uuid::now_v7();
        let key = ObjectPath::from(format!("{customer}/{ticket}/{id}"));
        let sealer = self
            .vault
            .seal_field_stream(&personal_data::ATTACHMENT, &customer.to_string(), key.as_ref())
            .await?;
        let reservation = Reservation {
            attachment: id,
            ticket,
            customer,
            bytes: AttachmentLimits::reservation(declared_length),
        };
        self.release_stale(customer).await?;
        self.reserve(&reservation, &key).await?;
        let writer = match self.attachments.objects.put_multipart(&key).await {
            Ok(upload) => WriteMultipart::new_with_chunk_size(upload, self.attachments.part_bytes),
            Err(error) => {
                self.release(&reservation).await;
                return Err(AppError::Objects(error));
            }
        };
        let mut upload = Upload {
            support: self.clone(),
            reservation,
            key,
            actor: actor.clone(),
            sniffer: Sniffer::default(),
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            sealer: None,
            writer: Some(writer),
            settled: false,
            _permit: permit,
        };
        if let Some(writer) = upload.writer.as_mut() {
            writer.write(sealer.header());
        }
        upload.sealer = Some(sealer);
        Ok(upload)
    }

    async fn reserve(&self, reservation: &Reservation, key: &ObjectPath) -> Result<(), AppError> {
        let limits = &self.limits;
        let ticket_scope = format!("ticket:{}", reservation.ticket);
        let customer_scope = format!("customer:{}", reservation.customer);
        let bytes = int(reservation.bytes);
        let mut unit = self.store.begin();
        for scope in [&ticket_scope, &customer_scope] {
            unit.execute(
                Statement::new(
                    "INSERT INTO attachment_usage (scope, files, bytes) VALUES ($1, 0, 0)
                     ON CONFLICT (scope) DO NOTHING",
                )
                .bind(scope.as_str()),
            );
        }
        unit.execute(
            Statement::new(
                "UPDATE attachment_usage SET files = files + 1 WHERE scope = $1 AND files + 1 <= $2",
            )
            .bind(ticket_scope.as_str())
            .bind(int(limits.files_per_ticket))
            .expect_rows(1, "ticket_files"),
        );
        unit.execute(
            Statement::new(
                "UPDATE attachment_usage SET bytes = bytes + $2 WHERE scope = $1 AND bytes + $2 <= $3",
            )
            .bind(ticket_scope.as_str())
            .bind(bytes)
            .bind(int(limits.bytes_per_ticket))
            .expect_rows(1, "ticket_bytes"),
        );
        unit.execute(
            Statement::new(
                "UPDATE attachment_usage SET files = files + 1, bytes = bytes + $2
                 WHERE scope = $1 AND bytes + $2 <= $3",
            )
            .bind(customer_scope.as_str())
            .bind(bytes)
            .bind(int(limits.bytes_per_customer))
            .expect_rows(1, "customer_bytes"),
        );
        unit.execute(
            Statement::new(
                "INSERT INTO ticket_attachments
                   (id, ticket_id, object_key, size, sha256, content_type, file_name, created_at, state)
                 VALUES ($1, $2, $3, $4, '', '', '', $5, 'pending')",
            )
            .bind(reservation.attachment.to_string())
            .bind(reservation.ticket.to_string())
            .bind(key.to_string())
            .bind(bytes)
            .bind(micros(self.clock.now().wall())),
        );
        match unit.commit().await {
            Ok(_) => Ok(()),
            Err(StoreError::Rejected { reason, .. }) => Err(AppError::Quota(match reason.as_str() {
                "ticket_files" => QuotaExceeded::TicketFiles(limits.files_per_ticket),
                "ticket_bytes" => QuotaExceeded::TicketBytes(limits.bytes_per_ticket),
                _ => QuotaExceeded::CustomerBytes(limits.bytes_per_customer),
            })),
            Err(error) => Err(error.into()),
        }
    }

    /// Releases the customer's reservations of uploads that never ended (support stopped
    /// while they streamed): pending for longer than any upload takes.
    async fn release_stale(&self, customer: Uuid) -> Result<(), AppError> {
        let cutoff = micros(self.clock.now().wall()).saturating_sub(STALE_AFTER_MICROS);
        let rows = self
            .store
            .query(
                Statement::new(
                    "SELECT a.id, a.ticket_id, a.size FROM ticket_attachments a JOIN tickets t ON t.id = a.ticket_id
                     WHERE t.customer_id = $1 AND a.state = 'pending' AND a.created_at < $2",
                )
                .bind(customer.to_string())
                .bind(cutoff),
            )
            .await?;
        for row in &rows {
            let stale = Reservation {
                attachment: row.text("id")?.parse().map_err(super::corrupt)?,
                ticket: row.text("ticket_id")?.parse().map_err(super::corrupt)?,
                customer,
                bytes: u64::try_from(row.int("size")?).unwrap_or_default(),
            };
            tracing::info!(attachment = %stale.attachment, "releasing the reservation of an upload that never ended");
            self.release(&stale).await;
        }
        Ok(())
    }

    /// Gives back what `reservation` took, if its row is still pending (an erasure may have
    /// taken both meanwhile). A failure is logged: the reservation then stays counted.
    async fn release(&self, reservation: &Reservation) {
        let mut unit = self.store.begin();
        for scope in [format!("ticket:{}", reservation.ticket), format!("customer:{}", reservation.customer)]
        {
            unit.execute(
                Statement::new(
                    "UPDATE attachment_usage SET files = files - 1, bytes = bytes - $2 WHERE scope = $1
                     AND EXISTS (SELECT 1 FROM ticket_attachments WHERE id = $3 AND state = 'pending')",
                )
                .bind(scope)
                .bind(int(reservation.bytes))
                .bind(reservation.attachment.to_string()),
            );
        }
        unit.execute(
            Statement::new("DELETE FROM ticket_attachments WHERE id = $1 AND state = 'pending'")
                .bind(reservation.attachment.to_string()),
        );
        if let Err(error) = unit.commit().await {
            tracing::warn!(%error, attachment = %reservation.attachment, "an upload's reservation was not released");
        }
    }
}

impl Upload {
    /// Takes the next piece of the file.
    pub async fn write(&mut self, piece: &[u8]) -> Result<(), AppError> {
        self.sniffer.feed(piece)?;
        if self.sniffer.size() > self.reservation.bytes {
            // Only a body longer than its own Content-Length gets here (a file over the
            // largest size is refused by the sniffer first).
            return Err(AttachmentError::LongerThanDeclared.into());
        }
        self.digest.update(piece);
        let sealed = self.sealer.as_mut().ok_or_else(settled)?.push(piece)?;
        if !sealed.is_empty() {
            let writer = self.writer.as_mut().ok_or_else(settled)?;
            // At most one part in flight: what an upload holds stays one part and one chunk.
            writer.wait_for_capacity(1).await.map_err(AppError::Objects)?;
            writer.put(Bytes::from(sealed));
        }
        Ok(())
    }

    /// Ends the upload: the file's type is judged on all of it, the object completed, and the
    /// row stored with the reservation shrunk to the file's size. `sent_name` is the client's
    /// file name.
    pub async fn finish(mut self, sent_name: Option<&str>) -> Result<Attachment, AppError> {
        match self.complete(sent_name).await {
            Ok(attachment) => {
                self.settled = true;
                Ok(attachment)
            }
            Err(error) => {
                self.abort().await;
                Err(error)
            }
        }
    }

    async fn complete(&mut self, sent_name: Option<&str>) -> Result<Attachment, AppError> {
        let size = self.sniffer.size();
        let content_type = std::mem::take(&mut self.sniffer).finish()?;
        let last = self.sealer.take().ok_or_else(settled)?.finish()?;
        let mut writer = self.writer.take().ok_or_else(settled)?;
        writer.put(Bytes::from(last));
        // From here the object may exist: an abort deletes it.
        writer.finish().await.map_err(AppError::Objects)?;
        let support = &self.support;
        let reservation = &self.reservation;
        let digest = std::mem::replace(&mut self.digest, ring::digest::Context::new(&ring::digest::SHA256));
        let sha256 = hex(&digest.finish());
        let name = file_name(sent_name);
        let sealed_name = support.seal(&personal_data::ATTACHMENT_NAME, reservation.customer, &name).await?;
        let now = support.clock.now().wall();
        let mut unit = support.store.begin();
        unit.execute(
            Statement::new(
                "UPDATE ticket_attachments SET state = 'stored', size = $2, sha256 = $3, content_type = $4,
                   file_name = $5, created_at = $6 WHERE id = $1 AND state = 'pending'",
            )
            .bind(reservation.attachment.to_string())
            .bind(int(size))
            .bind(sha256.as_str())
            .bind(content_type.as_mime())
            .bind(sealed_name.as_str())
            .bind(micros(now))
            .expect_rows(1, "upload_released"),
        );
        let unused = int(reservation.bytes.saturating_sub(size));
        for scope in [format!("ticket:{}", reservation.ticket), format!("customer:{}", reservation.customer)]
        {
            unit.execute(
                Statement::new("UPDATE attachment_usage SET bytes = bytes - $2 WHERE scope = $1")
                    .bind(scope)
                    .bind(unused),
            );
        }
        let resource = format!("ticket/{}/attachment/{}", reservation.ticket, reservation.attachment);
        unit.audit(self.actor.audit("ticket.attach", resource, "ok", now));
        unit.commit().await.map_err(|error| match error {
            // An erasure of the customer took the pending row meanwhile.
            StoreError::Rejected { .. } => AppError::UnknownTicket(reservation.ticket),
            error => error.into(),
        })?;
        Ok(Attachment {
            id: reservation.attachment,
            ticket_id: reservation.ticket,
            file_name: name,
            content_type,
            size,
            sha256,
            created_at: now,
        })
    }

    /// Gives up: the multipart upload aborted (or the object deleted, if it was completed) and
    /// the reservation released.
    pub async fn abort(mut self) {
        self.settled = true;
        cleanup(self.support.clone(), self.writer.take(), self.key.clone(), self.reservation.clone()).await;
    }
}

fn settled() -> AppError {
    AppError::Corrupt("the upload was already finished".into())
}

async fn cleanup(
    support: Support,
    writer: Option<WriteMultipart>,
    key: ObjectPath,
    reservation: Reservation,
) {
    match writer {
        Some(writer) => {
            if let Err(error) = writer.abort().await {
                tracing::warn!(%error, %key, "an upload was not aborted");
            }
        }
        None => {
            if let Err(error) = support.attachments.delete(&key).await {
                tracing::warn!(%error, %key, "the object of a failed upload was not deleted");
            }
        }
    }
    support.release(&reservation).await;
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // Dropped midway (the client went away, the handler was cancelled): clean up from a
        // task of its own, as no one awaits this upload any more.
        let (support, writer, key) = (self.support.clone(), self.writer.take(), self.key.clone());
        let reservation = self.reservation.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(cleanup(support, writer, key, reservation));
        }
    }
}
