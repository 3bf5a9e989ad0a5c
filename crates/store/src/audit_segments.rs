//! Sealing the oldest part of the audit chain: choosing a segment, and replacing its rows by
//! their anchor in one unit of work. Writing the segment to the archive is the caller's (the
//! store knows no object store); it must happen before [`Store::seal_audit_segment`].

use tessera_audit::{Anchor, StoredAuditRecord, hash_from_hex, hash_to_hex};
use tessera_kernel::Timestamp;

use crate::error::{Result, StoreError};
use crate::model::Statement;
use crate::store::Store;

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("a negative audit index or time: {value}")))
}

impl Store {
    /// Every anchor of an archived segment, oldest first.
    pub async fn audit_anchors(&self) -> Result<Vec<Anchor>> {
        let rows = self
            .query(Statement::new(
                "SELECT first_idx, last_idx, hash, object_key, archived_at FROM tessera_audit_anchors ORDER BY last_idx",
            ))
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Anchor {
                    first_index: to_u64(row.int("first_idx")?)?,
                    last_index: to_u64(row.int("last_idx")?)?,
                    hash: hash_from_hex(row.text("hash")?)
                        .ok_or_else(|| StoreError::Corrupt("an anchor's hash is not 64 hex digits".into()))?,
                    object_key: row.text("object_key")?.to_owned(),
                    archived_at: Timestamp::from_micros(to_u64(row.int("archived_at")?)?),
                })
            })
            .collect()
    }

    /// The next segment to seal: the `records` records right after the newest anchor (from
    /// the first, before any), if all of them were written before `written_before`; else none.
    /// Segments are all `records` long from index 0, so a run that stopped before sealing
    /// chooses the same range again (and overwrites the same archived object). The chain's last
    /// record always stays, because the writer links the next record to the newest row.
    pub async fn sealable_audit_segment(
        &self,
        written_before: Timestamp,
        records: usize,
    ) -> Result<Vec<StoredAuditRecord>> {
        let Some((head, _)) = self.audit_head().await? else { return Ok(Vec::new()) };
        let after = self.audit_anchors().await?.last().map(|a| a.last_index);
        let segment = self.audit_records(after, records).await?;
        let sealable = segment.len() == records
            && segment.iter().all(|r| r.record.at < written_before && r.index < head);
        Ok(if sealable { segment } else { Vec::new() })
    }

    /// Records `anchor` and deletes the rows it stands for, in one unit of work. Refused, with
    /// nothing changed, unless every row of the range is there and the chain's last record is
    /// not among them.
    pub async fn seal_audit_segment(&self, anchor: &Anchor) -> Result<()> {
        let rows = anchor.last_index.saturating_sub(anchor.first_index).saturating_add(1);
        let mut unit = self.begin();
        unit.execute(
            Statement::new(
                "INSERT INTO tessera_audit_anchors (first_idx, last_idx, hash, object_key, archived_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(to_i64(anchor.first_index))
            .bind(to_i64(anchor.last_index))
            .bind(hash_to_hex(&anchor.hash))
            .bind(anchor.object_key.as_str())
            .bind(to_i64(anchor.archived_at.as_micros())),
        );
        unit.execute(
            Statement::new(
                "DELETE FROM tessera_audit WHERE idx >= $1 AND idx <= $2
                   AND idx < (SELECT MAX(idx) FROM tessera_audit)",
            )
            .bind(to_i64(anchor.first_index))
            .bind(to_i64(anchor.last_index))
            .expect_rows(rows, "audit_segment_changed"),
        );
        unit.commit().await?;
        Ok(())
    }
}
