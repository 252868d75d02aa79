//! Secrets and tokens: generation behind a port (so tests can pin it), digests, and comparison in
//! constant time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngExt as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// Source of identifiers, tokens and secrets.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait SecretGenerator: Send + Sync {
    /// A new UUIDv7 for a site, user or event.
    fn new_id(&self) -> Uuid;
    /// A bearer-style token: 32 random bytes, URL-safe base64 without padding (43 characters).
    fn token(&self) -> String;
    /// A key or signing secret: 32 random bytes as 64 lowercase hex characters.
    fn hex_secret(&self) -> String;
}

/// The real generator, backed by the operating system's CSPRNG through `rand`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomSecretGenerator;

impl SecretGenerator for RandomSecretGenerator {
    fn new_id(&self) -> Uuid {
        Uuid::now_v7()
    }

    fn token(&self) -> String {
        let bytes: [u8; 32] = rand::rng().random();
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn hex_secret(&self) -> String {
        let bytes: [u8; 32] = rand::rng().random();
        hex(&bytes)
    }
}

/// SHA-256 of the UTF-8 bytes of `value`, as 64 lowercase hex characters: how every token is stored.
pub fn sha256_hex(value: &str) -> String {
    hex(&Sha256::digest(value.as_bytes()))
}

/// Compares two secrets in constant time. Both sides are digested first, so neither the position of
/// the first difference nor the length of the expected secret leaks through timing.
pub fn secret_eq(presented: &[u8], expected: &[u8]) -> bool {
    let a = Sha256::digest(presented);
    let b = Sha256::digest(expected);
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_url_safe_characters_and_unique() {
        let g = RandomSecretGenerator;
        let (a, b) = (g.token(), g.token());
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a, b);
    }

    #[test]
    fn hex_secrets_are_64_lowercase_hex() {
        let s = RandomSecretGenerator.hex_secret();
        assert_eq!(s.len(), 64);
        assert!(
            s.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
    }

    #[test]
    fn ids_are_uuid_v7() {
        assert_eq!(RandomSecretGenerator.new_id().get_version_num(), 7);
    }

    #[test]
    fn sha256_hex_matches_known_vector() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn secret_eq_compares_exactly() {
        assert!(secret_eq(b"key", b"key"));
        assert!(!secret_eq(b"key", b"kez"));
        assert!(!secret_eq(b"key", b"key "));
        assert!(!secret_eq(b"", b"key"));
    }
}
