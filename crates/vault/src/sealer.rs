//! What a service needs of the vault to keep personal data sealed, as a small trait: services
//! hold an `Arc<dyn Sealer>`, the [`Vault`] in production. The benchmark of what sealing costs
//! puts a pass-through in its place for its baseline, in the same run.

use async_trait::async_trait;
use tessera_kernel::personal::PersonalField;

use crate::{Decrypted, Result, Sealed, StreamKey, StreamSealer, Vault, VaultError};

#[async_trait]
pub trait Sealer: Send + Sync + std::fmt::Debug {
    /// `text` sealed with `subject`'s data key, in a form that fits a text column or a JSON
    /// string; refused once the subject is erased.
    async fn seal(&self, subject: &str, text: &str) -> Result<String>;
    /// What `stored` says: the plain text of a sealed value, or `stored` itself if it was never
    /// sealed (written before sealing, or blanked by an erasure); `None` once the subject's key
    /// is shredded.
    async fn open(&self, subject: &str, stored: &str) -> Result<Option<String>>;
    /// `bytes` sealed with `subject`'s data key, as bytes (for an object too large to carry
    /// as text, such as a file); refused once the subject is erased.
    async fn seal_bytes(&self, subject: &str, bytes: &[u8]) -> Result<Vec<u8>>;
    /// The plain bytes of what [`seal_bytes`](Self::seal_bytes) made; `None` once the
    /// subject's key is shredded.
    async fn open_bytes(&self, subject: &str, sealed: &[u8]) -> Result<Option<Vec<u8>>>;
    /// `subject`'s data key for sealing a stream (a file, chunk by chunk: see
    /// [`StreamKey`]), made on first use; refused once the subject is erased.
    async fn stream_sealing_key(&self, subject: &str) -> Result<StreamKey>;
    /// `subject`'s data key for opening a stream; `None` once the subject's key is shredded.
    async fn stream_opening_key(&self, subject: &str) -> Result<Option<StreamKey>>;
    /// A keyed hash of `value` for lookups (`purpose` separates uses); stable across restarts.
    fn blind_index(&self, purpose: &str, value: &str) -> String;
    /// A keyed pseudonym of `value` for analytics; stable across restarts.
    fn pseudonym(&self, value: &str) -> String;
    /// `text`, a value of the declared `field`, sealed with `subject`'s data key. Refused unless
    /// the declaration says the field is sealed: the data map is what the code does.
    async fn seal_field(&self, field: &PersonalField, subject: &str, text: &str) -> Result<String> {
        declared_sealed(field)?;
        self.seal(subject, text).await
    }
    /// Like [`seal_field`](Self::seal_field), for bytes (a file).
    async fn seal_field_bytes(&self, field: &PersonalField, subject: &str, bytes: &[u8]) -> Result<Vec<u8>> {
        declared_sealed(field)?;
        self.seal_bytes(subject, bytes).await
    }
    /// Like [`seal_field`](Self::seal_field), for a stream; `context` names the stream (the
    /// object it goes to) and is needed again to open it.
    async fn seal_field_stream(
        &self,
        field: &PersonalField,
        subject: &str,
        context: &str,
    ) -> Result<StreamSealer> {
        declared_sealed(field)?;
        self.stream_sealing_key(subject).await?.sealer(context)
    }
    /// Forgets `subject`'s key for good.
    async fn shred(&self, subject: &str) -> Result<()>;
    /// Drops `subject`'s key from this process's cache (another process shredded it).
    fn evict(&self, subject: &str);
}

fn declared_sealed(field: &PersonalField) -> Result<()> {
    if field.is_sealed() {
        Ok(())
    } else {
        Err(VaultError::NotDeclaredSealed { service: field.service, field: field.field })
    }
}

#[async_trait]
impl Sealer for Vault {
    async fn seal(&self, subject: &str, text: &str) -> Result<String> {
        Ok(self.encrypt_str(subject, text).await?.to_string())
    }

    async fn open(&self, subject: &str, stored: &str) -> Result<Option<String>> {
        let Ok(sealed) = stored.parse::<Sealed>() else { return Ok(Some(stored.to_owned())) };
        Ok(match self.decrypt_str(subject, &sealed).await? {
            Decrypted::Plain(text) => Some(text),
            Decrypted::Erased => None,
        })
    }

    async fn seal_bytes(&self, subject: &str, bytes: &[u8]) -> Result<Vec<u8>> {
        Ok(self.encrypt(subject, bytes).await?.to_binary())
    }

    async fn open_bytes(&self, subject: &str, sealed: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.decrypt(subject, &Sealed::from_binary(sealed)?).await?.into_option())
    }

    async fn stream_sealing_key(&self, subject: &str) -> Result<StreamKey> {
        Vault::stream_key(self, subject, true).await?.ok_or(VaultError::Shredded)
    }

    async fn stream_opening_key(&self, subject: &str) -> Result<Option<StreamKey>> {
        Vault::stream_key(self, subject, false).await
    }

    fn blind_index(&self, purpose: &str, value: &str) -> String {
        Vault::blind_index(self, purpose, value)
    }

    fn pseudonym(&self, value: &str) -> String {
        Vault::pseudonym(self, value)
    }

    async fn shred(&self, subject: &str) -> Result<()> {
        Vault::shred(self, subject).await
    }

    fn evict(&self, subject: &str) {
        Vault::evict(self, subject);
    }
}

#[cfg(test)]
mod tests {
    use tessera_kernel::personal::{DataClass, Location, PersonalField, Protection, Retention};

    use super::*;

    /// Seals by prefixing, so that the test sees what reached `seal`.
    #[derive(Debug)]
    struct Marking;

    #[async_trait]
    impl Sealer for Marking {
        async fn seal(&self, subject: &str, text: &str) -> Result<String> {
            Ok(format!("sealed[{subject}]:{text}"))
        }
        async fn open(&self, _: &str, stored: &str) -> Result<Option<String>> {
            Ok(Some(stored.to_owned()))
        }
        async fn seal_bytes(&self, _: &str, bytes: &[u8]) -> Result<Vec<u8>> {
            Ok([b"sealed:".as_slice(), bytes].concat())
        }
        async fn open_bytes(&self, _: &str, sealed: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(Some(sealed.to_vec()))
        }
        async fn stream_sealing_key(&self, subject: &str) -> Result<StreamKey> {
            Ok(StreamKey::from_bytes(&[0; 32], subject))
        }
        async fn stream_opening_key(&self, subject: &str) -> Result<Option<StreamKey>> {
            Ok(Some(StreamKey::from_bytes(&[0; 32], subject)))
        }
        fn blind_index(&self, _: &str, value: &str) -> String {
            value.to_owned()
        }
        fn pseudonym(&self, value: &str) -> String {
            value.to_owned()
        }
        async fn shred(&self, _: &str) -> Result<()> {
            Ok(())
        }
        fn evict(&self, _: &str) {}
    }

    fn field(protection: &'static [Protection]) -> PersonalField {
        PersonalField {
            service: "support",
            field: "ticket subject",
            class: DataClass::FreeText,
            protection,
            retention: Retention::UntilErasure,
            purpose: "answering",
            locations: &[Location::Column { table: "tickets", column: "subject" }],
        }
    }

    #[tokio::test]
    async fn only_a_field_declared_sealed_is_sealed() {
        let sealed = field(&[Protection::Sealed]);
        assert_eq!(Marking.seal_field(&sealed, "ada", "hi").await.expect("sealed"), "sealed[ada]:hi");
        assert!(Marking.seal_field_bytes(&sealed, "ada", b"x").await.is_ok());
        let plain = field(&[Protection::Plain("no reason")]);
        let refused = Marking.seal_field(&plain, "ada", "hi").await.expect_err("not declared sealed");
        assert!(matches!(
            refused,
            VaultError::NotDeclaredSealed { service: "support", field: "ticket subject" }
        ));
        assert!(Marking.seal_field_bytes(&plain, "ada", b"x").await.is_err());
        assert!(Marking.seal_field_stream(&sealed, "ada", "x").await.is_ok());
        assert!(Marking.seal_field_stream(&plain, "ada", "x").await.is_err());
    }
}
