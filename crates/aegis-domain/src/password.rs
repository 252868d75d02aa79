//! Password hashing (decision 19): Argon2id PHC strings, bcrypt hashes adopted from the reference
//! verified and flagged for upgrade, and a dummy verification for accounts that do not exist or
//! have no password (decision 20), so that timing does not tell them apart.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use async_trait::async_trait;

use crate::user::PlainPassword;

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// It matches; `needs_rehash` when the stored hash is bcrypt or Argon2 with other parameters.
    Match { needs_rehash: bool },
    /// Wrong password, no stored hash, or a stored hash that cannot be parsed.
    NoMatch,
}

/// Hashing failed (only on exhausted resources; never on user input).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(pub String);

/// The password port. Implementations run the work off the request threads.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// A new PHC string for `password`.
    async fn hash(&self, password: &PlainPassword) -> Result<String, HashError>;
    /// Checks `password` against `stored`. With no stored hash, or one that cannot be parsed, a
    /// dummy verification of the same cost runs and the answer is [`Verification::NoMatch`].
    async fn verify(
        &self,
        password: &PlainPassword,
        stored: Option<String>,
    ) -> Result<Verification, HashError>;
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    /// Memory in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Settings {
    /// OWASP's first recommended configuration: m=19456 KiB, t=2, p=1.
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// The synchronous algorithms. Wrap it in an implementation of [`PasswordHasher`] that runs it on a
/// bounded pool of threads.
#[derive(Clone)]
pub struct PasswordAlgorithms {
    argon2: Argon2<'static>,
    settings: Argon2Settings,
    dummy_hash: String,
}

impl std::fmt::Debug for PasswordAlgorithms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordAlgorithms")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl PasswordAlgorithms {
    /// Algorithms with these Argon2id costs. Fails on parameters Argon2 rejects.
    pub fn new(settings: Argon2Settings) -> Result<Self, HashError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| HashError(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_hash = argon2
            .hash_password(b"aegis-dummy-password")
            .map_err(|e| HashError(e.to_string()))?
            .to_string();
        Ok(Self {
            argon2,
            settings,
            dummy_hash,
        })
    }

    /// A new Argon2id PHC string (random salt).
    pub fn hash(&self, password: &PlainPassword) -> Result<String, HashError> {
        self.argon2
            .hash_password(password.expose().as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| HashError(e.to_string()))
    }

    /// Verifies; see [`PasswordHasher::verify`].
    pub fn verify(&self, password: &PlainPassword, stored: Option<&str>) -> Verification {
        let pw = password.expose().as_bytes();
        match stored {
            Some(hash) if is_bcrypt(hash) => {
                if bcrypt::verify(pw, hash).unwrap_or(false) {
                    Verification::Match { needs_rehash: true }
                } else {
                    Verification::NoMatch
                }
            }
            Some(hash) => match PasswordHash::new(hash) {
                Ok(parsed) if self.argon2.verify_password(pw, &parsed).is_ok() => {
                    Verification::Match {
                        needs_rehash: !self.current(&parsed),
                    }
                }
                Ok(_) => Verification::NoMatch,
                Err(_) => self.dummy(pw),
            },
            None => self.dummy(pw),
        }
    }

    fn dummy(&self, pw: &[u8]) -> Verification {
        if let Ok(parsed) = PasswordHash::new(&self.dummy_hash) {
            let _ = self.argon2.verify_password(pw, &parsed);
        }
        Verification::NoMatch
    }

    fn current(&self, parsed: &PasswordHash) -> bool {
        let Ok(params) = Params::try_from(parsed) else {
            return false;
        };
        parsed.algorithm.as_str() == "argon2id"
            && params.m_cost() == self.settings.memory_kib
            && params.t_cost() == self.settings.iterations
            && params.p_cost() == self.settings.parallelism
    }
}

fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> PasswordAlgorithms {
        PasswordAlgorithms::new(Argon2Settings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    fn pw(s: &str) -> PlainPassword {
        PlainPassword::new(s.into())
    }

    #[test]
    fn argon2id_round_trip() {
        let algs = fast();
        let hash = algs.hash(&pw("correct horse")).unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            algs.verify(&pw("correct horse"), Some(&hash)),
            Verification::Match {
                needs_rehash: false
            }
        );
        assert_eq!(
            algs.verify(&pw("wrong"), Some(&hash)),
            Verification::NoMatch
        );
    }

    #[test]
    fn other_argon2_parameters_ask_for_a_rehash() {
        let hash = fast().hash(&pw("pw-12345")).unwrap();
        let stronger = PasswordAlgorithms::new(Argon2Settings {
            memory_kib: 128,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        assert_eq!(
            stronger.verify(&pw("pw-12345"), Some(&hash)),
            Verification::Match { needs_rehash: true }
        );
    }

    #[test]
    fn bcrypt_from_the_reference_verifies_and_asks_for_a_rehash() {
        let hash = bcrypt::hash("legacy-password", 4).unwrap();
        let algs = fast();
        assert_eq!(
            algs.verify(&pw("legacy-password"), Some(&hash)),
            Verification::Match { needs_rehash: true }
        );
        assert_eq!(algs.verify(&pw("nope"), Some(&hash)), Verification::NoMatch);
        let b2 = hash.replacen("$2b$", "$2a$", 1);
        assert!(matches!(
            algs.verify(&pw("legacy-password"), Some(&b2)),
            Verification::Match { .. }
        ));
    }

    #[test]
    fn missing_or_broken_hashes_never_match() {
        let algs = fast();
        for stored in [
            None,
            Some(""),
            Some("not-a-hash"),
            Some("$2b$12$short"),
            Some("$argon2id$garbage"),
        ] {
            assert_eq!(
                algs.verify(&pw("anything"), stored),
                Verification::NoMatch,
                "{stored:?}"
            );
        }
    }
}
