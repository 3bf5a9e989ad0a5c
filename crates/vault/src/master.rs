//! The master key: the one secret from configuration, which wraps every data key and the
//! vault's own secrets. It is identified by a short id derived from it, stored next to each
//! wrapped key, so that during a rotation the vault knows which master key opens which row.

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ring::aead::LessSafeKey;
use ring::digest::{SHA256, digest};
use ring::rand::SystemRandom;

use crate::crypto::{self, KEY_LEN};
use crate::error::{Result, VaultError};

/// A 256-bit master key. `Debug` shows its id only.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    bytes: [u8; KEY_LEN],
    key: LessSafeKey,
}

impl MasterKey {
    fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        // The id is public (stored with every wrapped key), so it is a hash of the key under a
        // label of its own, never a prefix of the key itself.
        let mut labelled = b"tessera.vault.master-key-id\0".to_vec();
        labelled.extend_from_slice(&bytes);
        let id = digest(&SHA256, &labelled).as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self { id, key: crypto::key(&bytes), bytes }
    }

    /// A new random key.
    pub fn generate() -> Result<Self> {
        Ok(Self::from_bytes(crypto::random_bytes(&SystemRandom::new())?))
    }

    /// A key given as 32 bytes in base64 (standard or URL-safe, padded or not), as
    /// configuration carries it.
    pub fn from_base64(text: &str) -> Result<Self> {
        let text = text.trim();
        let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or_else(|| VaultError::InvalidMasterKey("not base64".into()))?;
        let bytes = <[u8; KEY_LEN]>::try_from(decoded.as_slice()).map_err(|_| {
            VaultError::InvalidMasterKey(format!("{} bytes; a master key is {KEY_LEN}", decoded.len()))
        })?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key in standard base64: the secret itself, for writing into configuration once.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes)
    }

    /// A public name for this key (16 hex digits), stored with each key it wraps.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn aead(&self) -> &LessSafeKey {
        &self.key
    }

    /// For development and tests: the key in `path`, created (random, mode 0600) if missing.
    /// Returns whether it was created. A file that group or others may read is refused rather
    /// than used, since anyone who reads it can read every subject's data. Production takes
    /// its key from configuration ([`MasterKey::from_base64`]) instead.
    pub fn load_or_create_dev(path: impl AsRef<Path>) -> Result<(MasterKey, bool)> {
        let path = path.as_ref();
        match read_key_file(path) {
            Err(VaultError::KeyFile { reason, .. }) if reason == NOT_FOUND => {}
            other => return other.map(|key| (key, false)),
        }
        let key = Self::generate()?;
        match write_key_file(path, &key) {
            Ok(()) => Ok((key, true)),
            // Another process created it first: use theirs.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                read_key_file(path).map(|key| (key, false))
            }
            Err(error) => Err(key_file_error(path, &error)),
        }
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish_non_exhaustive()
    }
}

const NOT_FOUND: &str = "not found";

fn key_file_error(path: &Path, error: &std::io::Error) -> VaultError {
    let reason =
        if error.kind() == std::io::ErrorKind::NotFound { NOT_FOUND.to_owned() } else { error.to_string() };
    VaultError::KeyFile { path: path.to_path_buf(), reason }
}

fn read_key_file(path: &Path) -> Result<MasterKey> {
    let mut file = std::fs::File::open(path).map_err(|e| key_file_error(path, &e))?;
    // The mode of the file opened, not of whatever the path names a moment later.
    let metadata = file.metadata().map_err(|e| key_file_error(path, &e))?;
    check_private(path, &metadata)?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(|e| key_file_error(path, &e))?;
    MasterKey::from_base64(&text)
        .map_err(|e| VaultError::KeyFile { path: path.to_path_buf(), reason: e.to_string() })
}

#[cfg(unix)]
fn check_private(path: &Path, metadata: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(VaultError::InsecureKeyFile { path: path.to_path_buf(), mode });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _metadata: &std::fs::Metadata) -> Result<()> {
    Ok(())
}

fn write_key_file(path: &Path, key: &MasterKey) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Created private, never widened and narrowed afterwards.
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(format!("{}\n", key.to_base64()).as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_id_and_never_the_key() {
        let key = MasterKey::from_base64(&STANDARD.encode([0xAB; KEY_LEN])).expect("key");
        assert_eq!(format!("{key:?}"), format!("MasterKey {{ id: {:?}, .. }}", key.id()));
    }

    #[test]
    fn the_id_is_stable_and_differs_between_keys() {
        let a = MasterKey::from_base64(&STANDARD.encode([1; KEY_LEN])).expect("key");
        let again = MasterKey::from_base64(&URL_SAFE_NO_PAD.encode([1; KEY_LEN])).expect("key");
        let b = MasterKey::generate().expect("key");
        assert_eq!(a.id(), again.id());
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().len(), 16);
    }

    #[test]
    fn a_key_of_the_wrong_length_or_not_base64_is_refused() {
        assert!(matches!(
            MasterKey::from_base64(&STANDARD.encode([1; 16])),
            Err(VaultError::InvalidMasterKey(_))
        ));
        assert!(matches!(MasterKey::from_base64("not base64!"), Err(VaultError::InvalidMasterKey(_))));
    }

    #[test]
    fn a_key_round_trips_through_base64() {
        let key = MasterKey::generate().expect("key");
        assert_eq!(MasterKey::from_base64(&key.to_base64()).expect("parse").id(), key.id());
    }
}
