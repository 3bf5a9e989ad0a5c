//! Archiving the old part of a service's audit chain to an object store, and proving it back.
//!
//! A segment (a fixed number of records, all older than the age given) is written to the
//! archive as JSON lines under `audit/<service>/<first>-<last>.jsonl`; then its anchor is
//! recorded and its rows deleted, in one unit of work. A crash between the two leaves the
//! object without an anchor, an orphan: its rows are still in the table, so the next run picks
//! the same range (segments are aligned) and overwrites it. The other order could lose records.

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::path::Path;
use tessera_audit::{Anchor, Verification, encode_segment, segment_key, verify_segment};
use tessera_store::{Store, StoreError};
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the audit archive failed at {key}: {source}")]
    Objects { key: String, source: object_store::Error },
    #[error("audit archive `{0}`: use file:///absolute/folder or s3://bucket")]
    Url(String),
    #[error("cannot open the audit archive: {0}")]
    Open(String),
}

/// The archive at `url`: `file:///absolute/folder` (created if missing), or `s3://bucket`
/// configured by the usual `AWS_*` environment, as support's attachments are.
pub fn open_archive(url: &str) -> Result<Arc<dyn ObjectStore>, ArchiveError> {
    let failed = |error: &dyn std::fmt::Display| ArchiveError::Open(format!("{url}: {error}"));
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(ArchiveError::Url(url.to_owned()));
        }
        std::fs::create_dir_all(path).map_err(|e| failed(&e))?;
        let local = object_store::local::LocalFileSystem::new_with_prefix(path).map_err(|e| failed(&e))?;
        return Ok(Arc::new(local));
    }
    if url.starts_with("s3://") || url.starts_with("s3a://") {
        let s3 =
            object_store::aws::AmazonS3Builder::from_env().with_url(url).build().map_err(|e| failed(&e))?;
        return Ok(Arc::new(s3));
    }
    Err(ArchiveError::Url(url.to_owned()))
}

/// The archive of an embedded data folder: `<data>/archive`.
pub fn embedded_archive_url(data: &std::path::Path) -> String {
    let absolute = std::path::absolute(data).unwrap_or_else(|_| data.to_path_buf());
    format!("file://{}", absolute.join("archive").display())
}

/// How old a record must be before it is archived, and how many records a segment holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchivePolicy {
    pub older_than: Duration,
    pub segment_records: usize,
}

impl Default for ArchivePolicy {
    fn default() -> Self {
        Self { older_than: Duration::from_secs(365 * 86_400), segment_records: 10_000 }
    }
}

/// How often a node looks for segments old enough to archive.
pub const ARCHIVE_EVERY: Duration = Duration::from_secs(3600);

/// Where a node archives its services' audit chains, what it archives, and how often it looks.
#[derive(Clone, Debug)]
pub struct AuditArchive {
    pub objects: Arc<dyn ObjectStore>,
    pub policy: ArchivePolicy,
    pub every: Duration,
}

/// Until `stopped`, every `archive.every`: every sealable segment of `service`'s chain
/// archived. Nothing is kept in memory between runs: the anchors say where the next starts.
pub(crate) async fn archive_until(
    service: &'static str,
    store: Store,
    archive: AuditArchive,
    mut stopped: watch::Receiver<bool>,
) {
    while !*stopped.borrow() {
        match archive_audit(service, &store, &archive.objects, archive.policy).await {
            Ok(anchors) if anchors.is_empty() => {}
            Ok(anchors) => tracing::info!(service, segments = anchors.len(), "audit segments archived"),
            Err(error) => tracing::warn!(service, %error, "audit archiving failed; retrying later"),
        }
        tokio::select! {
            () = tokio::time::sleep(archive.every) => {}
            _ = stopped.changed() => {}
        }
    }
}

/// Archives every sealable segment of `service`'s chain; returns the anchors recorded.
pub async fn archive_audit(
    service: &str,
    store: &Store,
    archive: &Arc<dyn ObjectStore>,
    policy: ArchivePolicy,
) -> Result<Vec<Anchor>, ArchiveError> {
    let mut anchors = Vec::new();
    loop {
        let now = store.clock().now();
        let segment = store
            .sealable_audit_segment(now.saturating_sub(policy.older_than), policy.segment_records)
            .await?;
        let (Some(first), Some(last)) = (segment.first(), segment.last()) else { return Ok(anchors) };
        let key = segment_key(service, first.index, last.index);
        let failed = |source| ArchiveError::Objects { key: key.clone(), source };
        archive.put(&Path::from(key.as_str()), encode_segment(&segment).into()).await.map_err(failed)?;
        let anchor = Anchor {
            first_index: first.index,
            last_index: last.index,
            hash: last.hash,
            object_key: key.clone(),
            archived_at: now,
        };
        store.seal_audit_segment(&anchor).await?;
        anchors.push(anchor);
    }
}

/// One archived segment's verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentCheck {
    pub anchor: Anchor,
    pub verification: Verification,
    /// Why the segment could not even be checked (missing object, anchors not contiguous).
    pub problem: Option<String>,
}

impl SegmentCheck {
    pub fn ok(&self) -> bool {
        self.problem.is_none() && self.verification.ok
    }
}

/// Fetches every archived segment named by `store`'s anchors and verifies each: it starts
/// where the previous one ended and ends at its own anchor's hash.
pub async fn verify_archived(
    store: &Store,
    archive: &Arc<dyn ObjectStore>,
) -> Result<Vec<SegmentCheck>, StoreError> {
    let anchors = store.audit_anchors().await?;
    let mut checks = Vec::with_capacity(anchors.len());
    let mut previous: Option<&Anchor> = None;
    for anchor in &anchors {
        let expected_first = previous.map_or(0, |p| p.last_index.saturating_add(1));
        let mut problem = (anchor.first_index != expected_first)
            .then(|| format!("the anchor starts at {}, not {expected_first}", anchor.first_index));
        let verification = match fetch(archive, &anchor.object_key).await {
            Ok(bytes) => verify_segment(&bytes, anchor, previous),
            Err(error) => {
                problem.get_or_insert(format!("cannot read {}: {error}", anchor.object_key));
                Verification {
                    records: 0,
                    ok: false,
                    first_bad_index: Some(anchor.first_index),
                    problem: None,
                }
            }
        };
        checks.push(SegmentCheck { anchor: anchor.clone(), verification, problem });
        previous = Some(anchor);
    }
    Ok(checks)
}

async fn fetch(archive: &Arc<dyn ObjectStore>, key: &str) -> Result<Vec<u8>, object_store::Error> {
    Ok(archive.get(&Path::from(key)).await?.bytes().await?.to_vec())
}
