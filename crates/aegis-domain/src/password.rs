//! Password hashing (decision 19): Argon2id PHC strings, bcrypt hashes adopted from the reference
//! verified and flagged for upgrade, and a dummy verification for accounts that do not exist or
//! have no password (decision 20), so that timing does not tell them apart.
//!
//! Argon2's working memory (19 MiB at the default cost) is a [`HashMemory`] that the caller owns,
//! so a hashing thread can reuse it across a burst of jobs and release it when idle.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use async_trait::async_trait;
use subtle::ConstantTimeEq as _;

use crate::user::PlainPassword;

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// It matches; `needs_rehash` when the stored hash is bcrypt or Argon2 with other parameters.
    Match {
        /// The password is right but the stored hash is not Argon2id at the current
        /// [`Argon2Settings`]: store a fresh [`PasswordHasher::hash`] of it.
        needs_rehash: bool,
    },
    /// Wrong password, no stored hash, or a stored hash that cannot be parsed.
    NoMatch,
}

/// Hashing did not run (never because of user input). Wrap it like [`crate::RepoError`], so that
/// [`HashError::Busy`] stays in the source chain.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing worker is busy and the queue is full: try again shortly.
    #[error("password hashing is saturated")]
    Busy,
    /// The hashing machinery failed.
    #[error("password hashing failed: {0}")]
    Failed(String),
}

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
    /// Learns what verifying hashes of these kinds costs, before any such hash is checked, so
    /// that failures take as long as the slowest kind from the start. Optional.
    async fn learn_costs(&self, _kinds: Vec<HashKind>) -> Result<(), HashError> {
        Ok(())
    }
}

/// The kind of a stored hash as far as its cost goes: the algorithm and its parameters, never the
/// salt or the hash itself. Failed verifications are timed per kind (see [`FailureTiming`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HashKind {
    /// No usable stored hash: the dummy verification at the current parameters runs.
    Dummy,
    /// bcrypt at this cost.
    Bcrypt(u32),
    /// Argon2 with the PHC prefix that names its variant, version and parameters, e.g.
    /// `$argon2id$v=19$m=19456,t=2,p=1$`.
    Argon2(String),
}

/// The largest costs a calibration sample is made with: a stored hash beyond them (which would
/// keep a hashing thread busy for minutes) is not timed in advance.
const MAX_SAMPLE_KIB: u32 = 1 << 20;
const MAX_SAMPLE_ITERATIONS: u32 = 32;
const MAX_SAMPLE_PARALLELISM: u32 = 16;
const MAX_SAMPLE_BCRYPT_COST: u32 = 16;

impl HashKind {
    /// The kind of `stored` (a PHC or bcrypt string), or of its prefix as
    /// [`crate::repo::AccountRepository::password_hash_kinds`] returns it.
    pub fn of(stored: Option<&str>) -> Self {
        let Some(stored) = stored else {
            return Self::Dummy;
        };
        if is_bcrypt(stored) {
            return stored
                .get(4..6)
                .and_then(|c| c.parse().ok())
                .map_or(Self::Dummy, Self::Bcrypt);
        }
        // `$argon2id$v=19$m=…,t=…,p=…$salt$hash`: everything before the salt.
        let parts: Vec<&str> = stored.split('$').collect();
        match parts.as_slice() {
            ["", alg, version, params, ..]
                if alg.starts_with("argon2") && version.starts_with("v=") =>
            {
                Self::Argon2(format!("${alg}${version}${params}$"))
            }
            ["", alg, params, ..] if alg.starts_with("argon2") && params.starts_with("m=") => {
                Self::Argon2(format!("${alg}${params}$"))
            }
            _ => Self::Dummy,
        }
    }
}

/// How long failed verifications take, so that every failure can be made to take as long as the
/// slowest kind of stored hash: a login for an unknown address, for an account without a password
/// and for a wrong password against any hash cost the same (decision 41).
///
/// Each kind's cost is the median of its recent verifications; the floor is the largest of those.
/// Callers time each verification and, when it fails, wait out the rest of the floor.
#[derive(Debug, Default)]
pub struct FailureTiming(crate::timing::RecentTimes<HashKind>);

impl FailureTiming {
    /// Records that verifying a hash of `kind` took `took`.
    pub fn record(&self, kind: HashKind, took: std::time::Duration) {
        self.0.record(kind, took);
    }

    /// What every failed verification should take at least.
    pub fn floor(&self) -> std::time::Duration {
        self.0.largest_median().unwrap_or_default()
    }

    /// Whether `kind` has been timed.
    pub fn knows(&self, kind: &HashKind) -> bool {
        self.0.median(kind).is_some()
    }
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory (Argon2's `t`); at least 1.
    pub iterations: u32,
    /// Degree of parallelism (Argon2's `p`, lanes); at least 1, and `memory_kib` must be at
    /// least 8 times it.
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

/// Argon2 blocks allocated at once at least: 32 MiB and one block. glibc serves smaller requests
/// from per-thread arenas once it has seen a block this size freed (its mmap threshold adapts
/// upwards to at most 32 MiB) and then keeps them: 50 logins once left 660 MiB resident. A larger
/// request is always mapped from the kernel and returned on drop. Only the pages Argon2 touches
/// become resident, so the unused tail costs address space, not memory.
const MIN_ALLOCATED_BLOCKS: usize = 32 * 1024 + 1;

/// Working memory for Argon2 on one thread: grown to the largest cost seen, reused by the next job,
/// and given back to the operating system by [`HashMemory::release`] or on drop.
#[derive(Default)]
pub struct HashMemory {
    blocks: Vec<Block>,
}

impl std::fmt::Debug for HashMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashMemory")
            .field("blocks", &self.blocks.len())
            .finish()
    }
}

impl HashMemory {
    /// The first `count` blocks, allocating them if this memory holds fewer.
    fn blocks(&mut self, count: usize) -> &mut [Block] {
        if self.blocks.len() < count {
            // Give back the old allocation before taking the new one.
            self.blocks = Vec::new();
            let mut blocks = Vec::with_capacity(count.max(MIN_ALLOCATED_BLOCKS));
            blocks.resize(count, Block::default());
            self.blocks = blocks;
        }
        &mut self.blocks[..count]
    }

    /// Bytes of Argon2 memory held now.
    pub fn held_bytes(&self) -> usize {
        self.blocks.len() * Block::SIZE
    }

    /// Gives the memory back.
    pub fn release(&mut self) {
        self.blocks = Vec::new();
    }
}

/// The synchronous algorithms. Wrap it in an implementation of [`PasswordHasher`] that runs it on a
/// bounded set of threads, each with its own [`HashMemory`].
///
/// Every call is CPU-bound for as long as the costs say (tens of milliseconds at the defaults), so
/// never call it on an async executor's threads.
///
/// ```
/// use aegis_domain::password::{Argon2Settings, PasswordAlgorithms, Verification};
/// use aegis_domain::user::PlainPassword;
///
/// // Tiny costs keep the example fast; use `Argon2Settings::default()` in production.
/// let cheap = Argon2Settings { memory_kib: 64, iterations: 1, parallelism: 1 };
/// let algorithms = PasswordAlgorithms::new(cheap)?;
///
/// let password = PlainPassword::new("correct horse battery staple".to_owned());
/// let stored = algorithms.hash(&password)?;
/// assert!(stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
///
/// assert_eq!(
///     algorithms.verify(&password, Some(&stored)),
///     Verification::Match { needs_rehash: false },
/// );
/// let wrong = PlainPassword::new("Tr0ub4dor&3".to_owned());
/// assert_eq!(algorithms.verify(&wrong, Some(&stored)), Verification::NoMatch);
///
/// // Hashes made at other costs still verify, and ask to be replaced.
/// let stronger = PasswordAlgorithms::new(Argon2Settings { memory_kib: 128, ..cheap })?;
/// assert_eq!(
///     stronger.verify(&password, Some(&stored)),
///     Verification::Match { needs_rehash: true },
/// );
///
/// // No stored hash: a dummy verification of the same cost runs, and the answer is no.
/// assert_eq!(algorithms.verify(&password, None), Verification::NoMatch);
/// # Ok::<(), aegis_domain::password::HashError>(())
/// ```
#[derive(Clone)]
pub struct PasswordAlgorithms {
    argon2: Argon2<'static>,
    params: Params,
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

/// Length of the Argon2 output in new hashes.
const OUTPUT_LEN: usize = 32;

impl PasswordAlgorithms {
    /// Algorithms with these Argon2id costs. Fails on parameters Argon2 rejects.
    pub fn new(settings: Argon2Settings) -> Result<Self, HashError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            Some(OUTPUT_LEN),
        )
        .map_err(|e| HashError::Failed(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut algorithms = Self {
            argon2,
            params,
            settings,
            dummy_hash: String::new(),
        };
        algorithms.dummy_hash = algorithms.hash_in(
            &PlainPassword::new("aegis-dummy-password".into()),
            &mut HashMemory::default(),
        )?;
        Ok(algorithms)
    }

    /// The Argon2 memory one job needs at these costs, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.params.block_count() * Block::SIZE
    }

    /// A new Argon2id PHC string (random salt), computed in `memory`.
    pub fn hash_in(
        &self,
        password: &PlainPassword,
        memory: &mut HashMemory,
    ) -> Result<String, HashError> {
        let failed = |e: &dyn std::fmt::Display| HashError::Failed(e.to_string());
        let salt = Salt::generate();
        let mut out = [0u8; OUTPUT_LEN];
        self.argon2
            .hash_password_into_with_memory(
                password.expose().as_bytes(),
                salt.as_ref(),
                &mut out,
                memory.blocks(self.params.block_count()),
            )
            .map_err(|e| failed(&e))?;
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).map_err(|e| failed(&e))?,
            salt: Some(salt),
            hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
        };
        Ok(hash.to_string())
    }

    /// Verifies in `memory`; see [`PasswordHasher::verify`].
    pub fn verify_in(
        &self,
        password: &PlainPassword,
        stored: Option<&str>,
        memory: &mut HashMemory,
    ) -> Verification {
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
                Ok(parsed) => match argon2_matches(pw, &parsed, memory) {
                    Some(true) => Verification::Match {
                        needs_rehash: !self.current(&parsed),
                    },
                    Some(false) => Verification::NoMatch,
                    None => self.dummy(pw, memory),
                },
                Err(_) => self.dummy(pw, memory),
            },
            None => self.dummy(pw, memory),
        }
    }

    /// A hash of `kind` for a throwaway password, to time verifications of that kind with.
    /// `None` for kinds that cannot be sampled (or would need more than 1 GiB).
    pub fn sample(&self, kind: &HashKind) -> Option<String> {
        use argon2::PasswordHasher as _;
        match kind {
            HashKind::Dummy => Some(self.dummy_hash.clone()),
            HashKind::Bcrypt(cost) if *cost > MAX_SAMPLE_BCRYPT_COST => None,
            HashKind::Bcrypt(cost) => bcrypt::hash("aegis-calibration", *cost).ok(),
            HashKind::Argon2(prefix) => {
                let parsed = PasswordHash::new(&format!("{prefix}c2FsdHNhbHRzYWx0")).ok()?;
                let params = Params::try_from(&parsed).ok()?;
                if params.m_cost() > MAX_SAMPLE_KIB
                    || params.t_cost() > MAX_SAMPLE_ITERATIONS
                    || params.p_cost() > MAX_SAMPLE_PARALLELISM
                {
                    return None;
                }
                let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).ok()?;
                let version = match parsed.version {
                    Some(v) => Version::try_from(v).ok()?,
                    None => Version::default(),
                };
                Argon2::new(algorithm, version, params)
                    .hash_password(b"aegis-calibration")
                    .ok()
                    .map(|h| h.to_string())
            }
        }
    }

    /// [`Self::hash_in`] with memory of its own, released afterwards.
    pub fn hash(&self, password: &PlainPassword) -> Result<String, HashError> {
        self.hash_in(password, &mut HashMemory::default())
    }

    /// [`Self::verify_in`] with memory of its own, released afterwards.
    pub fn verify(&self, password: &PlainPassword, stored: Option<&str>) -> Verification {
        self.verify_in(password, stored, &mut HashMemory::default())
    }

    fn dummy(&self, pw: &[u8], memory: &mut HashMemory) -> Verification {
        if let Ok(parsed) = PasswordHash::new(&self.dummy_hash) {
            let _ = argon2_matches(pw, &parsed, memory);
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

/// Recomputes an Argon2 PHC hash in `memory` and compares in constant time. `None` when the string
/// is not a usable Argon2 hash.
fn argon2_matches(pw: &[u8], parsed: &PasswordHash, memory: &mut HashMemory) -> Option<bool> {
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).ok()?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let expected = parsed.hash.as_ref()?;
    let salt = parsed.salt.as_ref()?;
    let params = Params::try_from(parsed).ok()?;
    let blocks = params.block_count();
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(pw, salt.as_ref(), &mut out, memory.blocks(blocks))
        .ok()?;
    Some(out.ct_eq(expected.as_bytes()).into())
}

/// Whether `hash` is a password hash Aegis can verify as stored: bcrypt (`$2a$`, `$2b$`, `$2y$`,
/// 60 characters) or an Argon2 PHC string. For hashes brought from elsewhere (an import), which
/// are kept as they are and upgraded at the next login.
pub fn is_verifiable_hash(hash: &str) -> bool {
    if is_bcrypt(hash) {
        return hash.len() == 60
            && hash
                .get(4..6)
                .is_some_and(|c| c.bytes().all(|b| b.is_ascii_digit()))
            && hash.get(6..7) == Some("$");
    }
    hash.starts_with("$argon2")
        && PasswordHash::new(hash).is_ok_and(|p| p.algorithm.as_str().starts_with("argon2"))
}

fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bcrypt_and_argon2_hashes_are_verifiable() {
        let ours = fast()
            .hash(&PlainPassword::new("pw-123456".into()))
            .unwrap();
        assert!(is_verifiable_hash(&ours));
        let bcrypt = "$2b$04$abcdefghijklmnopqrstuuX4PvR0hC7S6b8y9u5bQpA1pLzfQ3kGe";
        assert_eq!(bcrypt.len(), 60);
        assert!(is_verifiable_hash(bcrypt));
        for refused in [
            "",
            "plaintext-password",
            &bcrypt[..59],
            "$2b$xx$abcdefghijklmnopqrstuuX4PvR0hC7S6b8y9u5bQpA1pLzfQ3kGe",
            "$argon2id$v=19$garbage",
            "$pbkdf2-sha256$29000$c2FsdA$aGFzaA",
        ] {
            assert!(!is_verifiable_hash(refused), "{refused}");
        }
    }

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
    fn hashes_agree_with_the_argon2_crate_in_both_directions() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let algs = fast();
        let ours = algs.hash(&pw("correct horse")).unwrap();
        let reference = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        );
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(reference.verify_password(b"correct horse", &parsed).is_ok());
        assert!(reference.verify_password(b"wrong", &parsed).is_err());
        let theirs = reference.hash_password(b"pw-12345").unwrap().to_string();
        assert_eq!(
            algs.verify(&pw("pw-12345"), Some(&theirs)),
            Verification::Match {
                needs_rehash: false
            }
        );
        // Argon2i and Argon2d hashes verify too, and are replaced by Argon2id.
        for algorithm in [Algorithm::Argon2i, Algorithm::Argon2d] {
            let other = Argon2::new(
                algorithm,
                Version::V0x13,
                Params::new(64, 1, 1, None).unwrap(),
            )
            .hash_password(b"pw-12345")
            .unwrap()
            .to_string();
            assert_eq!(
                algs.verify(&pw("pw-12345"), Some(&other)),
                Verification::Match { needs_rehash: true },
                "{algorithm}"
            );
        }
    }

    #[test]
    fn memory_is_reused_across_jobs_and_given_back_on_release() {
        let algs = fast();
        let mut memory = HashMemory::default();
        assert_eq!(memory.held_bytes(), 0);
        let hash = algs.hash_in(&pw("pw-12345"), &mut memory).unwrap();
        assert_eq!(memory.held_bytes(), algs.memory_bytes());
        assert_eq!(algs.memory_bytes(), 64 * 1024);
        assert!(matches!(
            algs.verify_in(&pw("pw-12345"), Some(&hash), &mut memory),
            Verification::Match { .. }
        ));
        assert_eq!(memory.held_bytes(), algs.memory_bytes());
        memory.release();
        assert_eq!(memory.held_bytes(), 0);
    }

    #[test]
    fn hash_kinds_name_the_algorithm_and_costs_only() {
        let algs = fast();
        let ours = algs.hash(&pw("pw-12345")).unwrap();
        let kind = HashKind::of(Some(&ours));
        assert_eq!(
            kind,
            HashKind::Argon2("$argon2id$v=19$m=64,t=1,p=1$".into())
        );
        // A prefix (as the database lists kinds) is the same kind as a full hash.
        assert_eq!(HashKind::of(Some("$argon2id$v=19$m=64,t=1,p=1$")), kind);
        let bcrypt = bcrypt::hash("pw", 4).unwrap();
        assert_eq!(HashKind::of(Some(&bcrypt)), HashKind::Bcrypt(4));
        assert_eq!(HashKind::of(Some("$2b$12$")), HashKind::Bcrypt(12));
        for unusable in [
            None,
            Some(""),
            Some("plain"),
            Some("$2b$xx$"),
            Some("$argon2id$"),
        ] {
            assert_eq!(HashKind::of(unusable), HashKind::Dummy, "{unusable:?}");
        }
        // Samples of each kind verify as that kind.
        for kind in [HashKind::Bcrypt(4), kind, HashKind::Dummy] {
            let sample = algs.sample(&kind).unwrap();
            assert_eq!(HashKind::of(Some(&sample)) == kind, kind != HashKind::Dummy);
        }
        assert_eq!(
            algs.sample(&HashKind::Argon2(
                "$argon2id$v=19$m=4194304,t=1,p=1$".into()
            )),
            None
        );
    }

    #[test]
    fn the_failure_floor_is_the_slowest_kinds_recent_median() {
        use std::time::Duration;
        let ms = Duration::from_millis;
        let timing = FailureTiming::default();
        assert_eq!(timing.floor(), Duration::ZERO);
        for took in [20, 35, 21] {
            timing.record(HashKind::Dummy, ms(took));
        }
        assert_eq!(timing.floor(), ms(21));
        timing.record(HashKind::Bcrypt(12), ms(250));
        assert_eq!(timing.floor(), ms(250));
        assert!(timing.knows(&HashKind::Bcrypt(12)) && !timing.knows(&HashKind::Bcrypt(10)));
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
