//! Password hashing and checking. Hashes are argon2id in PHC form with the `argon2` crate's
//! defaults (m = 19 MiB, t = 2, p = 1, OWASP's minimum); the parameters travel inside each
//! hash, so raising them later leaves old hashes verifiable.
//!
//! Hashing is deliberately slow, so it runs on the blocking pool, never on the async workers.
//! A check for an email nobody registered verifies against [`DUMMY_HASH`] all the same, so an
//! attacker cannot tell from the time taken whether an address has an account.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use tessera_web::bounded::PASSWORD_HASHING;

use crate::domain::Password;

use super::AppError;

/// An argon2id hash, with the default parameters, of a random password nobody knows. Verified
/// against when the email is unknown, so that check costs what a real one costs; a unit test
/// keeps its parameters equal to the defaults.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$J0pvEHMdNJvaPB/qGkskIQ$2rL7oSjNHu9sYy3IOlbPPgTwYqGei/kgAUMYJ1Oy1Qk";

/// Hashes `password` with a fresh random salt, on the blocking pool, within the process's
/// bound on password work ([`PASSWORD_HASHING`]): past it, [`AppError::Busy`] at once.
pub(super) async fn hash(password: Password) -> Result<String, AppError> {
    PASSWORD_HASHING.run(move || hash_now(&password)).await.map_err(|_| AppError::Busy)?
}

fn hash_now(password: &Password) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AppError::Hashing(e.to_string()))
}

/// Whether `password` matches `stored`, or, when `stored` is `None`, the same work done
/// against the dummy hash (and `false`). Runs on the blocking pool, within the process's bound
/// on password work.
pub(super) async fn verify(password: Vec<u8>, stored: Option<String>) -> Result<bool, AppError> {
    PASSWORD_HASHING
        .run(move || {
            let known = stored.is_some();
            let stored = stored.as_deref().unwrap_or(DUMMY_HASH);
            let hash =
                PasswordHash::new(stored).map_err(|e| AppError::Corrupt(format!("password hash: {e}")))?;
            let matches = Argon2::default().verify_password(&password, &hash).is_ok();
            Ok(known && matches)
        })
        .await
        .map_err(|_| AppError::Busy)?
}

#[cfg(test)]
mod tests {
    use argon2::Params;

    use super::*;

    #[test]
    fn the_dummy_hash_costs_what_a_real_hash_costs() {
        let dummy = PasswordHash::new(DUMMY_HASH).expect("the dummy hash parses");
        let real_text = hash_now(&Password::parse("a real password").expect("valid")).expect("hashes");
        let real = PasswordHash::new(&real_text).expect("parses");
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert_eq!(dummy.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
        let params = Params::try_from(&dummy).expect("argon2 parameters");
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (Params::DEFAULT_M_COST, Params::DEFAULT_T_COST, Params::DEFAULT_P_COST)
        );
    }

    #[test]
    fn hashes_are_salted_argon2id_and_verify_only_their_password() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
        let password = || Password::parse("correct horse battery staple").expect("valid");
        let first = runtime.block_on(hash(password())).expect("hashes");
        let second = runtime.block_on(hash(password())).expect("hashes");
        assert!(first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{first}");
        assert_ne!(first, second, "each hash has its own salt");
        let check = |typed: &str, stored: Option<&str>| {
            runtime.block_on(verify(typed.as_bytes().to_vec(), stored.map(str::to_owned))).expect("verifies")
        };
        assert!(check("correct horse battery staple", Some(&first)));
        assert!(!check("correct horse battery stapler", Some(&first)));
        assert!(!check("anything", None), "an unknown account never matches");
    }
}
