//! Identifiers. Sites, users and webhook events are UUIDv7 values, serialised lowercase and
//! hyphenated; request fields and path segments are parsed with [`parse_identifier`].

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// Parses an identifier as a client sent it: a UUID string in the hyphenated form (any case), the
/// braced form or the 32-hex form. Anything else, including integers, numeric strings, surrounding
/// whitespace and the `urn:uuid:` form, is not an identifier and yields `None`.
///
/// Use it (or [`SiteId::parse`] and [`UserId::parse`]) on every identifier that comes from a
/// request, so that all accepted spellings name the same row.
///
/// ```
/// use aegis_domain::parse_identifier;
///
/// let id = parse_identifier("0191E1A0-0000-7000-8000-0000000000FF").unwrap();
/// assert_eq!(id.to_string(), "0191e1a0-0000-7000-8000-0000000000ff");
/// assert_eq!(parse_identifier("{0191e1a0-0000-7000-8000-0000000000ff}"), Some(id));
/// assert_eq!(parse_identifier("0191e1a00000700080000000000000ff"), Some(id));
/// assert_eq!(parse_identifier("urn:uuid:0191e1a0-0000-7000-8000-0000000000ff"), None);
/// assert_eq!(parse_identifier(" 0191e1a0-0000-7000-8000-0000000000ff"), None);
/// assert_eq!(parse_identifier("42"), None);
/// ```
pub fn parse_identifier(raw: &str) -> Option<Uuid> {
    match raw.len() {
        32 | 36 | 38 => Uuid::try_parse(raw).ok(),
        _ => None,
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Parses a client-supplied identifier; see [`parse_identifier`].
            pub fn parse(raw: &str) -> Option<Self> {
                parse_identifier(raw).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = InvalidIdentifier;

            fn from_str(raw: &str) -> Result<Self, Self::Err> {
                Self::parse(raw).ok_or(InvalidIdentifier)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }
    };
}

id_type!(
    /// The identifier of a site (tenant).
    SiteId
);
id_type!(
    /// The identifier of a user; users belong to exactly one site.
    UserId
);

/// A string that is not an identifier in any accepted form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid identifier")]
pub struct InvalidIdentifier;

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0191e1a0-0000-7000-8000-0000000000ff";

    #[test]
    fn accepts_hyphenated_braced_and_simple_forms_in_any_case() {
        let expected = Uuid::parse_str(ID).unwrap();
        for raw in [
            ID.to_string(),
            ID.to_uppercase(),
            format!("{{{ID}}}"),
            ID.replace('-', ""),
            ID.replace('-', "").to_uppercase(),
        ] {
            assert_eq!(parse_identifier(&raw), Some(expected), "{raw}");
        }
    }

    #[test]
    fn rejects_integers_urns_and_garbage() {
        for raw in [
            "1",
            "999999999999999999999",
            "",
            "not-a-uuid",
            "by-domain",
            &format!("urn:uuid:{ID}"),
            &format!(" {ID}"),
            &format!("{ID}\n"),
            "0191e1a0-0000-7000-8000-0000000000fg",
            "00000000000000000000000000000000000000000000",
        ] {
            assert_eq!(parse_identifier(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn display_is_lowercase_hyphenated() {
        let id = SiteId::parse(&ID.to_uppercase()).unwrap();
        assert_eq!(id.to_string(), ID);
    }
}
