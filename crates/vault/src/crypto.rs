//! AES-256-GCM as the vault uses it, for data and for wrapping keys alike: a random 96-bit
//! nonce in front of the ciphertext and its tag. Random nonces are safe here because each data
//! key seals one subject's fields, far below the 2^32 messages a key may take.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Result, VaultError};

pub(crate) const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// The smallest sealed value: a nonce and the tag of an empty plaintext.
pub(crate) const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

pub(crate) fn key(bytes: &[u8; KEY_LEN]) -> LessSafeKey {
    // AES-256-GCM takes exactly 32 bytes, which the array type guarantees.
    let unbound = UnboundKey::new(&AES_256_GCM, bytes).unwrap_or_else(|_| unreachable!("32-byte key"));
    LessSafeKey::new(unbound)
}

pub(crate) fn random_bytes<const N: usize>(rng: &SystemRandom) -> Result<[u8; N]> {
    let mut bytes = [0; N];
    rng.fill(&mut bytes).map_err(|_| VaultError::Random)?;
    Ok(bytes)
}

/// `nonce ‖ ciphertext ‖ tag`.
pub(crate) fn seal(key: &LessSafeKey, rng: &SystemRandom, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let nonce: [u8; NONCE_LEN] = random_bytes(rng)?;
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[NONCE_LEN..],
        )
        // Only a plaintext longer than GCM's 64 GiB limit fails.
        .map_err(|_| VaultError::Malformed("plaintext too long to seal".into()))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

pub(crate) fn open(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < OVERHEAD {
        return Err(VaultError::Malformed(format!(
            "{} bytes is shorter than a nonce and a tag",
            sealed.len()
        )));
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::Decrypt)?;
    let mut buffer = body.to_vec();
    let length =
        key.open_in_place(nonce, Aad::from(aad), &mut buffer).map_err(|_| VaultError::Decrypt)?.len();
    buffer.truncate(length);
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_its_key_and_associated_data() {
        let rng = SystemRandom::new();
        let k = key(&[7; KEY_LEN]);
        let sealed = seal(&k, &rng, b"subject-a", b"hello").expect("seal");
        assert_eq!(sealed.len(), OVERHEAD + 5);
        assert_eq!(open(&k, b"subject-a", &sealed).expect("open"), b"hello");
        assert!(matches!(open(&k, b"subject-b", &sealed), Err(VaultError::Decrypt)));
        assert!(matches!(open(&key(&[8; KEY_LEN]), b"subject-a", &sealed), Err(VaultError::Decrypt)));
        assert!(matches!(open(&k, b"subject-a", &sealed[..10]), Err(VaultError::Malformed(_))));
    }

    #[test]
    fn two_seals_of_the_same_plaintext_differ() {
        let rng = SystemRandom::new();
        let k = key(&[7; KEY_LEN]);
        assert_ne!(seal(&k, &rng, b"s", b"x").expect("seal"), seal(&k, &rng, b"s", b"x").expect("seal"));
    }
}
