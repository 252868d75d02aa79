//! Sealing email bodies at rest (decision 33). An outbox body holds a live link (verification,
//! password reset, email change), so it is stored only encrypted: AES-256-GCM with a random nonce,
//! under a key derived from `SECRET_KEY` with HKDF-SHA256. The row's id and recipient are
//! authenticated with it, so a sealed body cannot be moved to another row or readdressed.
//!
//! `SECRET_KEY_PREVIOUS` opens what the previous key sealed while a rotation is under way; at
//! startup such rows are sealed again under the current key.

use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};

/// The first byte of every sealed body: the format.
const FORMAT_V1: u8 = 1;
const SALT: &[u8] = b"aegis sealing salt v1";
const KEY_INFO: &[u8] = b"aegis email_outbox key v1";
const ID_INFO: &[u8] = b"aegis email_outbox key id v1";
const AAD_PREFIX: &[u8] = b"aegis email_outbox v1";

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

struct SealingKey {
    /// Hex digest naming the key (stored with each row, so rows can be told apart by key).
    id: String,
    key: RandomizedNonceKey,
}

impl SealingKey {
    fn derive(secret: &str) -> Result<Self, String> {
        let prk = Salt::new(HKDF_SHA256, SALT).extract(secret.as_bytes());
        let mut key = [0u8; 32];
        let mut id = [0u8; 6];
        let fail = |_| "key derivation failed".to_owned();
        prk.expand(&[KEY_INFO], Len(key.len()))
            .and_then(|okm| okm.fill(&mut key))
            .map_err(fail)?;
        prk.expand(&[ID_INFO], Len(id.len()))
            .and_then(|okm| okm.fill(&mut id))
            .map_err(fail)?;
        Ok(Self {
            id: id.iter().map(|b| format!("{b:02x}")).collect(),
            key: RandomizedNonceKey::new(&AES_256_GCM, &key).map_err(fail)?,
        })
    }
}

/// Why a sealed body could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Sealed under a key this instance does not hold (`SECRET_KEY` changed without
    /// `SECRET_KEY_PREVIOUS`, or another instance already has a newer key).
    UnknownKey,
    /// The key is known but the body does not authenticate: it was altered.
    Damaged,
}

/// The keys that seal and open outbox bodies.
#[derive(Clone)]
pub struct SealingKeys {
    inner: Arc<(SealingKey, Option<SealingKey>)>,
}

impl std::fmt::Debug for SealingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealingKeys")
            .field("current", &self.inner.0.id)
            .field("previous", &self.inner.1.as_ref().map(|k| &k.id))
            .finish()
    }
}

impl SealingKeys {
    /// Keys derived from `secret` (`SECRET_KEY`) and, during a rotation, `previous`, which must
    /// differ from it.
    pub fn new(secret: &str, previous: Option<&str>) -> Result<Self, String> {
        let current = SealingKey::derive(secret)?;
        let previous = previous.map(SealingKey::derive).transpose()?;
        if previous.as_ref().is_some_and(|p| p.id == current.id) {
            return Err("SECRET_KEY_PREVIOUS is the same as SECRET_KEY".into());
        }
        Ok(Self {
            inner: Arc::new((current, previous)),
        })
    }

    /// The id of the key new bodies are sealed with.
    pub fn current_id(&self) -> &str {
        &self.inner.0.id
    }

    /// The id of the previous key, if one is configured.
    pub fn previous_id(&self) -> Option<&str> {
        self.inner.1.as_ref().map(|k| k.id.as_str())
    }

    /// Seals a message's two bodies for the row `row` addressed to `recipient`.
    pub fn seal(
        &self,
        row: uuid::Uuid,
        recipient: &str,
        text: &str,
        html: &str,
    ) -> Result<Vec<u8>, String> {
        let text_len = u32::try_from(text.len()).map_err(|_| "body too large".to_owned())?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + 4 + text.len() + html.len() + 16);
        let mut payload = Vec::with_capacity(4 + text.len() + html.len() + 16);
        payload.extend_from_slice(&text_len.to_be_bytes());
        payload.extend_from_slice(text.as_bytes());
        payload.extend_from_slice(html.as_bytes());
        let nonce = self
            .inner
            .0
            .key
            .seal_in_place_append_tag(Aad::from(aad(row, recipient)), &mut payload)
            .map_err(|_| "sealing failed".to_owned())?;
        sealed.push(FORMAT_V1);
        sealed.extend_from_slice(nonce.as_ref());
        sealed.extend_from_slice(&payload);
        Ok(sealed)
    }

    /// Opens a body sealed by [`Self::seal`] under the key named `key_id`: (text, html).
    pub fn open(
        &self,
        key_id: &str,
        row: uuid::Uuid,
        recipient: &str,
        sealed: &[u8],
    ) -> Result<(String, String), OpenError> {
        let (current, previous) = &*self.inner;
        let key = [Some(current), previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.id == key_id)
            .ok_or(OpenError::UnknownKey)?;
        let (nonce, ciphertext) = match sealed.split_first() {
            Some((&FORMAT_V1, rest)) if rest.len() >= NONCE_LEN => rest.split_at(NONCE_LEN),
            _ => return Err(OpenError::Damaged),
        };
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Damaged)?;
        let mut buffer = ciphertext.to_vec();
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(aad(row, recipient)), &mut buffer)
            .map_err(|_| OpenError::Damaged)?;
        let (len, rest) = plain.split_at_checked(4).ok_or(OpenError::Damaged)?;
        let len = u32::from_be_bytes(len.try_into().map_err(|_| OpenError::Damaged)?) as usize;
        let (text, html) = rest.split_at_checked(len).ok_or(OpenError::Damaged)?;
        Ok((
            String::from_utf8(text.to_vec()).map_err(|_| OpenError::Damaged)?,
            String::from_utf8(html.to_vec()).map_err(|_| OpenError::Damaged)?,
        ))
    }
}

fn aad(row: uuid::Uuid, recipient: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + 16 + recipient.len());
    aad.extend_from_slice(AAD_PREFIX);
    aad.extend_from_slice(row.as_bytes());
    aad.extend_from_slice(recipient.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: uuid::Uuid = uuid::Uuid::from_u128(7);

    #[test]
    fn a_sealed_body_opens_only_for_its_row_recipient_and_key() {
        let keys = SealingKeys::new("a-secret-key-of-some-length-0123456789", None).unwrap();
        let sealed = keys
            .seal(ROW, "u@example.com", "text ?token=abc", "<p>html</p>")
            .unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("token=abc"));
        let id = keys.current_id();
        assert_eq!(
            keys.open(id, ROW, "u@example.com", &sealed).unwrap(),
            ("text ?token=abc".to_owned(), "<p>html</p>".to_owned())
        );
        let other_row = uuid::Uuid::from_u128(8);
        assert_eq!(
            keys.open(id, other_row, "u@example.com", &sealed),
            Err(OpenError::Damaged)
        );
        assert_eq!(
            keys.open(id, ROW, "attacker@example.com", &sealed),
            Err(OpenError::Damaged)
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            keys.open(id, ROW, "u@example.com", &tampered),
            Err(OpenError::Damaged)
        );
        let stranger = SealingKeys::new("another-secret-key-entirely-0123456789", None).unwrap();
        assert_ne!(stranger.current_id(), id);
        assert_eq!(
            stranger.open(id, ROW, "u@example.com", &sealed),
            Err(OpenError::UnknownKey)
        );
    }

    #[test]
    fn short_or_foreign_input_is_damaged_never_a_panic() {
        let keys = SealingKeys::new("a-secret-key-of-some-length-0123456789", None).unwrap();
        let sealed = keys.seal(ROW, "u@example.com", "t", "h").unwrap();
        let id = keys.current_id();
        let mut other_format = sealed.clone();
        other_format[0] = 2;
        for input in [
            Vec::new(),
            vec![FORMAT_V1],
            sealed[..NONCE_LEN].to_vec(),
            sealed[..sealed.len() - 1].to_vec(),
            other_format,
        ] {
            assert_eq!(
                keys.open(id, ROW, "u@example.com", &input),
                Err(OpenError::Damaged),
                "{input:?}"
            );
        }
    }

    #[test]
    fn a_previous_key_equal_to_the_current_one_is_refused() {
        let err = SealingKeys::new(
            "same-secret-0123456789abcdef0123",
            Some("same-secret-0123456789abcdef0123"),
        )
        .unwrap_err();
        assert!(err.contains("SECRET_KEY_PREVIOUS"), "{err}");
    }

    #[test]
    fn the_previous_key_still_opens_during_a_rotation() {
        let old = SealingKeys::new("the-old-secret-key-0123456789abcdef", None).unwrap();
        let sealed = old.seal(ROW, "u@example.com", "t", "h").unwrap();
        let rotated = SealingKeys::new(
            "the-new-secret-key-0123456789abcdef",
            Some("the-old-secret-key-0123456789abcdef"),
        )
        .unwrap();
        assert_eq!(rotated.previous_id(), Some(old.current_id()));
        assert_eq!(
            rotated
                .open(old.current_id(), ROW, "u@example.com", &sealed)
                .unwrap(),
            ("t".to_owned(), "h".to_owned())
        );
        // Derivation is stable: the same secret names the same key.
        let again = SealingKeys::new("the-old-secret-key-0123456789abcdef", None).unwrap();
        assert_eq!(again.current_id(), old.current_id());
    }
}
