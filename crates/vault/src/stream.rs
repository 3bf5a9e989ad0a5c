//! Sealing a stream of bytes (a file) chunk by chunk, so that neither sealing nor opening ever
//! holds more than one chunk: the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár,
//! "Online authenticated-encryption and its nonce-reuse misuse-resistance", 2015) over the
//! vault's AES-256-GCM.
//!
//! A sealed stream is a header, `v2.` ‖ stream id (16 random bytes) ‖ chunk length (u32, big
//! endian), then chunks, each `nonce ‖ ciphertext ‖ tag` as [`crypto::seal`] makes them. Every
//! chunk but the last holds exactly the chunk length of plain bytes; the last holds fewer
//! (possibly none), so a reader knows the last chunk by its length alone. Each chunk's
//! associated data binds the subject, the caller's context (which object it is), the header,
//! the chunk's index and whether it is the last: chunks cannot be reordered, dropped, moved to
//! another stream or object, and the stream cannot be cut short, without a chunk failing to
//! open.
//!
//! Each chunk takes a random nonce, as every value the vault seals does: a subject's key seals
//! far fewer than the 2^32 messages that random 96-bit nonces allow (a 200 MiB quota is 3,200
//! chunks of 64 KiB).
//!
//! The `v2.` prefix tells a stream from a value [`Sealed::to_binary`](crate::Sealed::to_binary)
//! made (`v1.`), so objects sealed whole before streams existed are still read.

use std::fmt;
use std::sync::Arc;

use ring::aead::LessSafeKey;
use ring::rand::SystemRandom;

use crate::crypto::{self, OVERHEAD};
use crate::error::{Result, VaultError};

/// What a sealed stream begins with.
pub const STREAM_PREFIX: &[u8] = b"v2.";
/// The length of a sealed stream's header.
pub const STREAM_HEADER_LEN: usize = STREAM_PREFIX.len() + STREAM_ID_LEN + 4;
/// Plain bytes per chunk of the streams this vault seals.
pub const STREAM_CHUNK_LEN: usize = 64 * 1024;
/// The longest chunk a header may announce: what an opener holds at most.
const MAX_CHUNK_LEN: usize = 4 * 1024 * 1024;
const STREAM_ID_LEN: usize = 16;
const LABEL: &[u8] = b"tessera.vault.stream\0";

/// A subject's data key, for sealing and opening streams. Services get one from
/// [`Sealer::seal_stream`](crate::Sealer::seal_stream); test doubles may make one from bytes.
#[derive(Clone)]
pub struct StreamKey {
    key: Arc<LessSafeKey>,
    subject: String,
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamKey").field("subject", &self.subject).finish_non_exhaustive()
    }
}

impl StreamKey {
    pub(crate) fn new(key: Arc<LessSafeKey>, subject: &str) -> Self {
        Self { key, subject: subject.to_owned() }
    }

    /// A key from raw bytes: for test doubles and benchmarks, which have no vault.
    pub fn from_bytes(bytes: &[u8; 32], subject: &str) -> Self {
        Self::new(Arc::new(crypto::key(bytes)), subject)
    }

    /// A sealer of a new stream; `context` names what the stream is (an object's key), and
    /// must be given again to open it.
    pub fn sealer(&self, context: &str) -> Result<StreamSealer> {
        let rng = SystemRandom::new();
        let id: [u8; STREAM_ID_LEN] = crypto::random_bytes(&rng)?;
        let mut header = Vec::with_capacity(STREAM_HEADER_LEN);
        header.extend_from_slice(STREAM_PREFIX);
        header.extend_from_slice(&id);
        header.extend_from_slice(&u32::try_from(STREAM_CHUNK_LEN).unwrap_or(u32::MAX).to_be_bytes());
        Ok(StreamSealer {
            chunks: Chunks::new(self, context, header),
            pending: Vec::with_capacity(STREAM_CHUNK_LEN),
            rng,
        })
    }

    /// An opener of the stream whose header is `header` (its first [`STREAM_HEADER_LEN`]
    /// bytes), sealed for `context`.
    pub fn opener(&self, context: &str, header: &[u8]) -> Result<StreamOpener> {
        if header.len() != STREAM_HEADER_LEN || !header.starts_with(STREAM_PREFIX) {
            return Err(VaultError::Malformed("not the header of a sealed stream".into()));
        }
        let length = header[STREAM_HEADER_LEN - 4..]
            .try_into()
            .map(u32::from_be_bytes)
            .map_err(|_| VaultError::Malformed("no chunk length".into()))?;
        let chunk_len = usize::try_from(length).unwrap_or(usize::MAX);
        if chunk_len == 0 || chunk_len > MAX_CHUNK_LEN {
            return Err(VaultError::Malformed(format!("a chunk length of {chunk_len} bytes")));
        }
        Ok(StreamOpener {
            chunks: Chunks::new(self, context, header.to_vec()),
            frame_len: chunk_len + OVERHEAD,
            pending: Vec::new(),
        })
    }
}

/// The state both directions share: the key, the associated data's fixed part, the index.
struct Chunks {
    key: Arc<LessSafeKey>,
    /// subject ‖ 0 ‖ label ‖ context ‖ 0 ‖ header; the index and the last flag follow.
    aad_prefix: Vec<u8>,
    header: Vec<u8>,
    index: u64,
}

impl Chunks {
    fn new(key: &StreamKey, context: &str, header: Vec<u8>) -> Self {
        let aad_prefix = [key.subject.as_bytes(), b"\0", LABEL, context.as_bytes(), b"\0", &header].concat();
        Self { key: key.key.clone(), aad_prefix, header, index: 0 }
    }

    fn aad(&self, last: bool) -> Vec<u8> {
        let mut aad = self.aad_prefix.clone();
        aad.extend_from_slice(&self.index.to_be_bytes());
        aad.push(u8::from(last));
        aad
    }
}

/// Seals one stream: feed it bytes as they come, [`finish`](Self::finish) at the end. It keeps
/// less than one chunk of plain bytes.
pub struct StreamSealer {
    chunks: Chunks,
    pending: Vec<u8>,
    rng: SystemRandom,
}

impl fmt::Debug for StreamSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamSealer").field("index", &self.chunks.index).finish_non_exhaustive()
    }
}

impl StreamSealer {
    /// The stream's header, written before its first chunk.
    pub fn header(&self) -> &[u8] {
        &self.chunks.header
    }

    /// Takes `bytes`; answers the sealed chunks they completed (often none).
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<Vec<u8>> {
        let mut sealed = Vec::new();
        while !bytes.is_empty() {
            let room = STREAM_CHUNK_LEN - self.pending.len();
            let (taken, rest) = bytes.split_at(room.min(bytes.len()));
            self.pending.extend_from_slice(taken);
            bytes = rest;
            // A full chunk is never the last one: the last is always shorter.
            if self.pending.len() == STREAM_CHUNK_LEN {
                sealed.extend(self.seal_pending(false)?);
            }
        }
        Ok(sealed)
    }

    /// Seals what is left as the last chunk (shorter than a chunk, possibly empty).
    pub fn finish(mut self) -> Result<Vec<u8>> {
        self.seal_pending(true)
    }

    fn seal_pending(&mut self, last: bool) -> Result<Vec<u8>> {
        let sealed = crypto::seal(&self.chunks.key, &self.rng, &self.chunks.aad(last), &self.pending)?;
        self.pending.clear();
        self.chunks.index += 1;
        Ok(sealed)
    }
}

/// Opens one stream: feed it the sealed bytes after the header as they come,
/// [`finish`](Self::finish) at the end. It keeps at most one sealed chunk.
pub struct StreamOpener {
    chunks: Chunks,
    frame_len: usize,
    pending: Vec<u8>,
}

impl fmt::Debug for StreamOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamOpener").field("index", &self.chunks.index).finish_non_exhaustive()
    }
}

impl StreamOpener {
    /// Takes sealed bytes; answers the plain bytes of the chunks they completed (often none).
    /// A chunk that does not open (altered, reordered, from another stream) is refused with
    /// [`VaultError::Decrypt`].
    pub fn push(&mut self, mut sealed: &[u8]) -> Result<Vec<u8>> {
        let mut plain = Vec::new();
        while !sealed.is_empty() {
            // A full frame is never the last chunk (the last is shorter), so it opens at once.
            let room = self.frame_len - self.pending.len();
            let (taken, rest) = sealed.split_at(room.min(sealed.len()));
            self.pending.extend_from_slice(taken);
            sealed = rest;
            if self.pending.len() == self.frame_len {
                plain.extend(self.open_pending(false)?);
            }
        }
        Ok(plain)
    }

    /// Opens what is left as the last chunk; refused if the stream was cut short.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        if self.pending.len() < OVERHEAD {
            return Err(VaultError::Malformed("the sealed stream was cut short".into()));
        }
        self.open_pending(true)
    }

    fn open_pending(&mut self, last: bool) -> Result<Vec<u8>> {
        let plain = crypto::open(&self.chunks.key, &self.chunks.aad(last), &self.pending)?;
        self.pending.clear();
        self.chunks.index += 1;
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KEY_LEN;

    fn sealed(key: &StreamKey, context: &str, plain: &[u8], pieces: usize) -> Vec<u8> {
        let mut sealer = key.sealer(context).expect("sealer");
        let mut out = sealer.header().to_vec();
        for piece in plain.chunks(pieces.max(1)) {
            out.extend(sealer.push(piece).expect("push"));
        }
        out.extend(sealer.finish().expect("finish"));
        out
    }

    fn opened(key: &StreamKey, context: &str, sealed: &[u8], pieces: usize) -> Result<Vec<u8>> {
        let (header, body) = sealed.split_at(STREAM_HEADER_LEN.min(sealed.len()));
        let mut opener = key.opener(context, header)?;
        let mut out = Vec::new();
        for piece in body.chunks(pieces.max(1)) {
            out.extend(opener.push(piece)?);
        }
        out.extend(opener.finish()?);
        Ok(out)
    }

    fn plain(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn any_length_round_trips_whatever_the_pieces() {
        let key = StreamKey::from_bytes(&[7; KEY_LEN], "ada");
        for len in [0, 1, STREAM_CHUNK_LEN - 1, STREAM_CHUNK_LEN, STREAM_CHUNK_LEN + 1, 3 * STREAM_CHUNK_LEN]
        {
            let bytes = plain(len);
            for (write, read) in [(1000, 777), (STREAM_CHUNK_LEN, 1 << 20), (99_999, 13)] {
                let sealed = sealed(&key, "a/b/c", &bytes, write);
                let chunks = len / STREAM_CHUNK_LEN + 1;
                assert_eq!(sealed.len(), STREAM_HEADER_LEN + len + chunks * OVERHEAD, "{len}");
                assert_eq!(opened(&key, "a/b/c", &sealed, read).expect("open"), bytes, "{len}");
            }
        }
    }

    #[test]
    fn reordered_dropped_cut_or_moved_chunks_do_not_open() {
        let key = StreamKey::from_bytes(&[7; KEY_LEN], "ada");
        let bytes = plain(2 * STREAM_CHUNK_LEN + 10);
        let sealed = sealed(&key, "a/b/c", &bytes, 4096);
        let frame = STREAM_CHUNK_LEN + OVERHEAD;
        let (header, body) = sealed.split_at(STREAM_HEADER_LEN);
        let (first, rest) = body.split_at(frame);
        let (second, last) = rest.split_at(frame);

        let swapped = [header, second, first, last].concat();
        assert!(matches!(opened(&key, "a/b/c", &swapped, 5000), Err(VaultError::Decrypt)));
        let dropped = [header, first, last].concat();
        assert!(matches!(opened(&key, "a/b/c", &dropped, 5000), Err(VaultError::Decrypt)));
        // Cut after a whole chunk: the middle chunk read as the last does not open.
        let cut = [header, first, second].concat();
        assert!(opened(&key, "a/b/c", &cut, 5000).is_err());
        let cut_in_a_chunk = &sealed[..sealed.len() - 3];
        assert!(matches!(opened(&key, "a/b/c", cut_in_a_chunk, 5000), Err(VaultError::Decrypt)));
        assert!(matches!(
            opened(&key, "a/b/c", &sealed[..STREAM_HEADER_LEN], 5000),
            Err(VaultError::Malformed(_))
        ));
        assert!(matches!(opened(&key, "a/b/other", &sealed, 5000), Err(VaultError::Decrypt)));
        assert!(matches!(
            opened(&StreamKey::from_bytes(&[7; KEY_LEN], "bob"), "a/b/c", &sealed, 5000),
            Err(VaultError::Decrypt)
        ));
        // A chunk of another stream of the same key and context.
        let other = self::sealed(&key, "a/b/c", &bytes, 4096);
        let spliced = [header, &other[STREAM_HEADER_LEN..STREAM_HEADER_LEN + frame], second, last].concat();
        assert!(matches!(opened(&key, "a/b/c", &spliced, 5000), Err(VaultError::Decrypt)));
        assert!(matches!(opened(&key, "a/b/c", &sealed, 5000), Ok(ref b) if *b == bytes));
    }

    #[test]
    fn a_header_that_is_not_one_is_refused() {
        let key = StreamKey::from_bytes(&[7; KEY_LEN], "ada");
        assert!(key.opener("x", b"v1.whatever").is_err());
        let mut header = key.sealer("x").expect("sealer").header().to_vec();
        header[STREAM_HEADER_LEN - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(key.opener("x", &header), Err(VaultError::Malformed(_))));
    }
}
