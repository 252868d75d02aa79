//! Webhook events: the payload is serialised once, when the event is queued, and sent
//! byte-identical on every attempt, signed with [`signature`].
//!
//! A payload is one JSON object with the keys `event_id`, `event_type`, `site_uuid`, `user_uuid`,
//! `email`, `aegis_role` and `timestamp`, in that order, in pure ASCII.

use uuid::Uuid;

use crate::clock::UnixTime;
use crate::ids::SiteId;
use crate::site::Site;
use crate::user::User;

/// What happened to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserEvent {
    /// The user verified their address for the first time (`user.verified`); sent once per user.
    Verified,
    /// The user was deleted (`user.deleted`).
    Deleted,
}

impl UserEvent {
    /// The event's name, as sent in the payload's `event_type` and the `X-Aegis-Event` header.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "user.verified",
            Self::Deleted => "user.deleted",
        }
    }
}

/// A queued webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// Unique per event and repeated on every attempt, so receivers can drop duplicates (delivery
    /// is at least once).
    pub event_id: Uuid,
    /// The site whose webhook receives the event; its URL and secret are read at delivery time.
    pub site_id: SiteId,
    /// The event's name ([`UserEvent::as_str`]).
    pub event_type: &'static str,
    /// The exact bytes every attempt sends.
    pub payload: String,
    /// When the event happened (Unix seconds); also the payload's `timestamp`.
    pub created_at: UnixTime,
}

/// The event for `user` on `site`, or `None` when the site has no webhook configured (both a URL
/// and a secret are needed), in which case nothing is queued.
pub fn user_event(
    event: UserEvent,
    site: &Site,
    user: &User,
    event_id: Uuid,
    now: UnixTime,
) -> Option<WebhookEvent> {
    let configured = site.webhook_url.as_deref().is_some_and(|u| !u.is_empty())
        && site
            .webhook_secret
            .as_deref()
            .is_some_and(|s| !s.is_empty());
    if !configured {
        return None;
    }
    let payload = format!(
        "{{\"event_id\":{},\"event_type\":{},\"site_uuid\":{},\"user_uuid\":{},\"email\":{},\
         \"aegis_role\":{},\"timestamp\":{now}}}",
        ascii_json_string(&event_id.hyphenated().to_string()),
        ascii_json_string(event.as_str()),
        ascii_json_string(&site.id.to_string()),
        ascii_json_string(&user.id.to_string()),
        ascii_json_string(user.email.as_str()),
        ascii_json_string(user.role.as_str()),
    );
    Some(WebhookEvent {
        event_id,
        site_id: site.id,
        event_type: event.as_str(),
        payload,
        created_at: now,
    })
}

/// A JSON string literal in pure ASCII, as Python's `json.dumps` writes it (non-ASCII as `\uXXXX`,
/// surrogate pairs beyond the BMP).
pub fn ascii_json_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;
    use crate::secrets::RandomSecretGenerator;
    use crate::site::tests::new_site;
    use crate::user::{Email, Role};

    #[test]
    fn strings_are_pure_ascii_json() {
        assert_eq!(ascii_json_string("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(ascii_json_string("jösé"), r#""j\u00f6s\u00e9""#);
        assert_eq!(ascii_json_string("😀"), r#""\ud83d\ude00""#);
        assert_eq!(ascii_json_string("\u{1}"), r#""\u0001""#);
    }

    #[test]
    fn payload_has_the_documented_keys_in_order() {
        let mut site = Site::create(
            new_site(Some("https://h.example.com")),
            1,
            &RandomSecretGenerator,
        );
        let user = User::new(
            UserId::from_uuid(Uuid::from_u128(2)),
            site.id,
            Email::parse("Jö@Example.com").unwrap(),
            None,
            Role::Admin,
            1,
        );
        let id = Uuid::from_u128(1);
        let event = user_event(UserEvent::Deleted, &site, &user, id, 1_700_000_000).unwrap();
        assert_eq!(
            event.payload,
            format!(
                "{{\"event_id\":\"{id}\",\"event_type\":\"user.deleted\",\"site_uuid\":\"{}\",\
                 \"user_uuid\":\"{}\",\"email\":\"j\\u00f6@example.com\",\"aegis_role\":\"admin\",\
                 \"timestamp\":1700000000}}",
                site.id, user.id
            )
        );
        let parsed: serde_json::Value = serde_json::from_str(&event.payload).unwrap();
        assert_eq!(parsed["email"], "jö@example.com");
        site.webhook_secret = None;
        assert!(user_event(UserEvent::Deleted, &site, &user, id, 1).is_none());
    }
}

/// The `X-Aegis-Signature` value: `sha256=` and the lowercase hex HMAC-SHA256, keyed with the UTF-8
/// bytes of the site's secret, of `"{timestamp}.{body}"`.
pub fn signature(secret: &str, timestamp: UnixTime, body: &str) -> String {
    use hmac::{KeyInit as _, Mac as _};
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod signature_tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_hmac() {
        // HMAC-SHA256(key="key", "1700000000.{}"), computed with Python's hmac module.
        let sig = signature("key", 1_700_000_000, "{}");
        assert_eq!(
            sig,
            "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
        assert_ne!(sig, signature("key", 1_700_000_001, "{}"));
        assert_ne!(sig, signature("kez", 1_700_000_000, "{}"));
    }
}
