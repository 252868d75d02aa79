//! Rate limits (decisions 5, 11, 22, 23): fixed windows counted in shared storage, so every
//! instance of the service sees the same counts, and the policy that says which requests count
//! against which buckets.
//!
//! Buckets are named from parsed values only: the canonical site UUID (or one fixed name when the
//! request names no site), a keyed digest of the normalised email address, and the client's
//! network. No bucket name holds raw client input, an email address, or more than
//! [`MAX_BUCKET_LEN`] bytes.
//!
//! A request is limited in three steps: [`hits`] names the counters it touches, a
//! [`RateCounters`] adapter applies them atomically, and [`decide`] reads the counts back. When the
//! request turns out not to count (see [`Limited::refunds`]), [`refunds`] takes its hits back.

use std::fmt;
use std::net::IpAddr;

use async_trait::async_trait;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::clock::UnixTime;
use crate::ids::SiteId;
use crate::repo::RepoError;
use crate::user::Email;

/// A limit: at most `limit` hits per `window_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Hits allowed in one window; the hit after the last allowed one is refused.
    pub limit: u32,
    /// The window's length. Windows are fixed and aligned to multiples of it since the Unix
    /// epoch (see [`Rate::window_start`]).
    pub window_seconds: u32,
}

impl Rate {
    /// `limit` hits per minute.
    pub const fn per_minute(limit: u32) -> Self {
        Self {
            limit,
            window_seconds: 60,
        }
    }

    /// `limit` hits per window of `minutes` minutes.
    pub const fn per_minutes(limit: u32, minutes: u32) -> Self {
        Self {
            limit,
            window_seconds: minutes * 60,
        }
    }

    /// `limit` hits per hour.
    pub const fn per_hour(limit: u32) -> Self {
        Self {
            limit,
            window_seconds: 3_600,
        }
    }

    /// The start of the window `now` falls in.
    pub fn window_start(&self, now: UnixTime) -> UnixTime {
        let w = i64::from(self.window_seconds.max(1));
        now - now.rem_euclid(w)
    }

    /// How the reference words it: "10 per 1 minute", "3 per 15 minute", "20 per 1 hour".
    ///
    /// ```
    /// use aegis_domain::ratelimit::Rate;
    ///
    /// assert_eq!(Rate::per_minutes(3, 15).describe(), "3 per 15 minute");
    /// assert_eq!(Rate::per_hour(20).describe(), "20 per 1 hour");
    /// ```
    pub fn describe(&self) -> String {
        if self.window_seconds.is_multiple_of(3_600) {
            format!("{} per {} hour", self.limit, self.window_seconds / 3_600)
        } else {
            format!("{} per {} minute", self.limit, self.window_seconds / 60)
        }
    }
}

/// One counter to hit: a bucket name, its rate, and what to add (1 to count, -1 to refund, 0 to
/// read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The counter's name, built by the policy from parsed values only (see the module docs).
    pub bucket: String,
    /// The limit the counter is held to; also fixes its window.
    pub rate: Rate,
    /// 1 to count the request, -1 to refund an earlier count, 0 only to read the count.
    pub by: i32,
}

/// A counter after a hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// The counter's name, as in the [`Hit`].
    pub bucket: String,
    /// The counter's rate, as in the [`Hit`].
    pub rate: Rate,
    /// Hits counted in the current window, this one included.
    pub hits: u32,
    /// Start of the current window (Unix seconds).
    pub window_start: UnixTime,
}

impl Count {
    /// Whether the counted hit went over the limit, so the request is refused.
    pub fn exceeded(&self) -> bool {
        self.hits > self.rate.limit
    }

    /// Hits left in the window, for the `X-RateLimit-Remaining` header; 0 once exceeded.
    pub fn remaining(&self) -> u32 {
        self.rate.limit.saturating_sub(self.hits)
    }

    /// When the window ends (Unix seconds).
    pub fn reset_at(&self) -> UnixTime {
        self.window_start + i64::from(self.rate.window_seconds)
    }
}

/// Shared counters.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait RateCounters: Send + Sync {
    /// Applies every hit to its bucket's current window, in one round trip, and returns the counts
    /// after, in the order given.
    async fn hit(&self, hits: Vec<Hit>, now: UnixTime) -> Result<Vec<Count>, RepoError>;
    /// Forgets a bucket (a successful login clears its failure count).
    async fn reset(&self, bucket: String) -> Result<(), RepoError>;
    /// Deletes counters whose window ended before `now`.
    async fn prune(&self, now: UnixTime) -> Result<u64, RepoError>;
}

/// The longest bucket name the policy produces.
pub const MAX_BUCKET_LEN: usize = 128;

/// Failed password checks allowed per account and client network per hour (the ASVS bound); a
/// successful login clears the count.
pub const FAILED_LOGINS_PER_HOUR: u32 = 100;

/// Which requests are limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// `login`: a password check on a tenant route.
    Login,
    /// `register`: self-registration on a site.
    Register,
    /// `request-password-reset`: sends mail to an address that may have an account.
    PasswordReset,
    /// `invite-user`: the tenant backend inviting a user.
    Invite,
    /// `change-password`: a password check on a bearer route.
    ChangePassword,
    /// `request-email-change`: a password check, and an answer that says whether an address is
    /// taken.
    EmailChange,
}

/// The rates of one route: per account, per site and per client network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    /// The rate per site and account digest (every route has one).
    pub account: Rate,
    /// The rate for the whole site, on routes that have one.
    pub site: Option<Rate>,
    /// The rate per client network, on routes that have one.
    pub client: Option<Rate>,
}

impl Limited {
    /// The route's name in bucket names and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Register => "register",
            Self::PasswordReset => "reset",
            Self::Invite => "invite",
            Self::ChangePassword => "change-password",
            Self::EmailChange => "email-change",
        }
    }

    /// The rates of the route. The first four are the original service's; the bearer routes'
    /// are Aegis's own.
    pub const fn rates(self) -> Rates {
        let (account, site, client) = match self {
            Self::Login => (Rate::per_minute(10), None, Some(Rate::per_minute(60))),
            Self::Register => (Rate::per_minute(5), None, Some(Rate::per_hour(20))),
            Self::PasswordReset => (
                Rate::per_minutes(3, 15),
                Some(Rate::per_hour(60)),
                Some(Rate::per_hour(20)),
            ),
            Self::Invite => (Rate::per_minutes(3, 15), Some(Rate::per_hour(100)), None),
            Self::ChangePassword | Self::EmailChange => {
                (Rate::per_hour(10), None, Some(Rate::per_hour(30)))
            }
        };
        Rates {
            account,
            site,
            client,
        }
    }

    /// Whether the route checks a password, so that its failures count toward, and are stopped by,
    /// the failed-login bound.
    pub const fn checks_password(self) -> bool {
        matches!(self, Self::Login | Self::ChangePassword | Self::EmailChange)
    }

    /// Whether a response with this status is refunded: invite-user charges only answers that are
    /// not 401, since its keys are read before the tenant key is checked.
    pub fn refunds(self, status: u16) -> bool {
        self == Self::Invite && status == 401
    }
}

/// The key that turns a normalised address into its account digest. Derive it from the service's
/// secret, so the digests in the counter table cannot be reversed with a list of addresses.
#[derive(Clone)]
pub struct AccountKeyring(Hmac<Sha256>);

impl fmt::Debug for AccountKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountKeyring(<redacted>)")
    }
}

impl AccountKeyring {
    /// The keyring of a service secret (`SECRET_KEY`), separate from every other key derived
    /// from it.
    pub fn from_secret(secret: &str) -> Self {
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(
            b"aegis rate-limit account digests v1",
        )
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(secret.as_bytes());
        Self::new(&mac.finalize().into_bytes().into())
    }

    /// The keyring of a 32-byte key used as it is; prefer [`AccountKeyring::from_secret`] unless
    /// the key is already derived for this one purpose.
    pub fn new(key: &[u8; 32]) -> Self {
        Self(
            <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length")),
        )
    }

    /// The account digest of `email` on `site`: 32 hex characters.
    pub fn account(&self, site: SiteKey, email: &Email) -> AccountDigest {
        let mut mac = self.0.clone();
        mac.update(site.to_string().as_bytes());
        mac.update(b"\0");
        mac.update(email.as_str().as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut hex = String::with_capacity(32);
        for byte in &digest[..16] {
            hex.push_str(&format!("{byte:02x}"));
        }
        AccountDigest(hex)
    }
}

/// An account as the limits and the security log name it: a keyed digest, never the address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountDigest(String);

impl AccountDigest {
    /// The digest that stands for "no valid address in the request".
    pub fn none() -> Self {
        Self("none".to_owned())
    }

    /// The digest's text: 32 lowercase hex characters, or `none`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The site a request names: its canonical UUID, or [`SiteKey::None`] when the request names no
/// site in any accepted spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SiteKey {
    /// A well-formed site identifier (the site need not exist).
    Site(SiteId),
    /// No site identifier, or one in no accepted spelling; such requests share the bucket
    /// `no-site`.
    None,
}

impl SiteKey {
    /// From the raw `site_id` a client sent, in any spelling the tenant gate accepts.
    pub fn parse(raw: Option<&str>) -> Self {
        raw.and_then(SiteId::parse).map_or(Self::None, Self::Site)
    }
}

impl fmt::Display for SiteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Site(id) => fmt::Display::fmt(id, f),
            Self::None => f.write_str("no-site"),
        }
    }
}

/// How client addresses are grouped into networks: one bucket per IPv4 `/v4` and per IPv6 `/v6`.
/// An IPv6 client usually holds a whole /64, so counting per address would give it 2⁶⁴ buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkPrefixes {
    /// Prefix length for IPv4 clients, 0 to 32 (larger values count as 32). Default 32: one
    /// bucket per address.
    pub v4: u8,
    /// Prefix length for IPv6 clients, 0 to 128 (larger values count as 128). Default 64.
    pub v6: u8,
}

impl Default for NetworkPrefixes {
    fn default() -> Self {
        Self { v4: 32, v6: 64 }
    }
}

/// A client's network: its address with the host bits cleared, and the prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientNetwork {
    network: IpAddr,
    prefix: u8,
}

impl ClientNetwork {
    /// The network `ip` belongs to. IPv4-mapped IPv6 addresses count as IPv4.
    pub fn of(ip: IpAddr, prefixes: NetworkPrefixes) -> Self {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => {
                let prefix = prefixes.v4.min(32);
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                Self {
                    network: IpAddr::V4((u32::from(v4) & mask).into()),
                    prefix,
                }
            }
            IpAddr::V6(v6) => {
                let prefix = prefixes.v6.min(128);
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                Self {
                    network: IpAddr::V6((u128::from(v6) & mask).into()),
                    prefix,
                }
            }
        }
    }
}

impl fmt::Display for ClientNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Whom a request counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The site the request names.
    pub site: SiteKey,
    /// The account the request names ([`AccountKeyring::account`]), or [`AccountDigest::none`]
    /// when it names no valid address.
    pub account: AccountDigest,
    /// `None` when the connection has no peer address (an in-process caller).
    pub client: Option<ClientNetwork>,
}

impl Subject {
    fn client_name(&self) -> String {
        self.client
            .map_or_else(|| "no-client".to_owned(), |c| c.to_string())
    }

    /// The failed-login bucket: per account *and* client network, so a stranger elsewhere can slow
    /// an account but cannot lock its owner out.
    pub fn failures(&self) -> Hit {
        Hit {
            bucket: format!(
                "login-fail:{}:{}:{}",
                self.site,
                self.account,
                self.client_name()
            ),
            rate: Rate::per_hour(FAILED_LOGINS_PER_HOUR),
            by: 0,
        }
    }
}

/// The hits one request makes, in a fixed order: account, site, client, and (on routes that check a
/// password) a read of the failed-login bucket. Pass them to [`RateCounters::hit`] before handling
/// the request, then to [`decide`] with the counts it returns.
///
/// ```
/// use aegis_domain::ratelimit::{
///     AccountKeyring, ClientNetwork, Limited, NetworkPrefixes, SiteKey, Subject, hits,
/// };
/// use aegis_domain::user::Email;
///
/// let keyring = AccountKeyring::from_secret("the service's SECRET_KEY");
/// let site = SiteKey::parse(Some("0192f1b4-5a6e-7c3d-8e9f-0a1b2c3d4e5f"));
/// let email = Email::parse("Ada@Example.com").unwrap();
/// let subject = Subject {
///     site,
///     account: keyring.account(site, &email),
///     client: Some(ClientNetwork::of(
///         "2001:db8::1".parse().unwrap(),
///         NetworkPrefixes::default(),
///     )),
/// };
///
/// let login = hits(Limited::Login, &subject);
/// // Account and client network are counted; the failed-login bucket is only read.
/// assert_eq!(login.len(), 3);
/// assert!(login[0].bucket.starts_with("login:account:0192f1b4-5a6e-7c3d-8e9f-0a1b2c3d4e5f:"));
/// assert_eq!(login[1].bucket, "login:ip:2001:db8::/64");
/// assert_eq!((login[0].by, login[1].by, login[2].by), (1, 1, 0));
/// // No bucket name holds the address.
/// assert!(login.iter().all(|h| !h.bucket.contains("example.com")));
/// ```
pub fn hits(route: Limited, subject: &Subject) -> Vec<Hit> {
    let rates = route.rates();
    let name = route.name();
    let mut hits = vec![Hit {
        bucket: format!("{name}:account:{}:{}", subject.site, subject.account),
        rate: rates.account,
        by: 1,
    }];
    if let Some(rate) = rates.site {
        hits.push(Hit {
            bucket: format!("{name}:site:{}", subject.site),
            rate,
            by: 1,
        });
    }
    if let (Some(rate), Some(client)) = (rates.client, subject.client) {
        hits.push(Hit {
            bucket: format!("{name}:ip:{client}"),
            rate,
            by: 1,
        });
    }
    if route.checks_password() {
        hits.push(subject.failures());
    }
    hits
}

/// The refunds of `hits` (every counted hit taken back).
pub fn refunds(hits: &[Hit]) -> Vec<Hit> {
    hits.iter()
        .filter(|h| h.by != 0)
        .map(|h| Hit {
            by: -1,
            ..h.clone()
        })
        .collect()
}

/// What the counts after a request's hits mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The bucket that refuses the request, if any.
    pub blocked: Option<Count>,
    /// The counter the response reports in its headers: the refusing one, else the one closest
    /// to its limit.
    pub reported: Option<Count>,
    /// Failed password checks already counted for this account and network.
    pub failures_so_far: u32,
}

impl Decision {
    /// Whether the refusal comes from the failed-login bound.
    pub fn blocked_by_failures(&self) -> bool {
        self.blocked
            .as_ref()
            .is_some_and(|c| c.bucket.starts_with("login-fail:"))
    }

    /// Which kind of limit refused the request, in words for a log line (never the bucket's name,
    /// which holds the account digest and the network).
    pub fn blocked_by(&self) -> Option<&'static str> {
        let bucket = &self.blocked.as_ref()?.bucket;
        if bucket.starts_with("login-fail:") {
            return Some("failed-login bound");
        }
        Some(match bucket.split(':').nth(1) {
            Some("account") => "per-account limit",
            Some("site") => "per-site limit",
            Some("ip") => "per-network limit",
            _ => "limit",
        })
    }
}

/// Decides on the counts [`RateCounters::hit`] returned for `hits` (in the same order). A counted
/// bucket refuses once its count exceeds the limit; the failed-login bucket, which is only read,
/// refuses once it has reached it.
///
/// ```
/// use aegis_domain::ratelimit::{Count, Hit, Rate, decide};
///
/// let now = 1_700_000_000;
/// let hits = vec![Hit { bucket: "register:account:a".into(), rate: Rate::per_minute(5), by: 1 }];
/// // What a RateCounters adapter answers after `n` hits in the current window.
/// let counts = |n| vec![Count {
///     bucket: hits[0].bucket.clone(),
///     rate: hits[0].rate,
///     hits: n,
///     window_start: hits[0].rate.window_start(now),
/// }];
///
/// let fifth = decide(&hits, &counts(5));
/// assert!(fifth.blocked.is_none());
/// assert_eq!(fifth.reported.as_ref().map(Count::remaining), Some(0));
///
/// let sixth = decide(&hits, &counts(6));
/// assert!(!sixth.blocked_by_failures());
/// let refused_by = sixth.blocked.expect("over the limit");
/// assert_eq!(refused_by.bucket, "register:account:a");
/// assert_eq!(refused_by.reset_at(), 1_700_000_040); // the end of the minute
/// ```
pub fn decide(hits: &[Hit], counts: &[Count]) -> Decision {
    let paired = || counts.iter().zip(hits);
    let blocked = paired()
        .find(|(c, h)| {
            if h.by == 0 {
                c.hits >= c.rate.limit
            } else {
                c.exceeded()
            }
        })
        .map(|(c, _)| c.clone());
    let reported = blocked.clone().or_else(|| {
        paired()
            .filter(|(_, h)| h.by != 0)
            .map(|(c, _)| c)
            .min_by_key(|c| (c.remaining(), c.reset_at()))
            .cloned()
    });
    let failures_so_far = paired().find(|(_, h)| h.by == 0).map_or(0, |(c, _)| c.hits);
    Decision {
        blocked,
        reported,
        failures_so_far,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_wording() {
        let r = Rate::per_minutes(3, 15);
        assert_eq!(r.window_start(1_000), 900);
        assert_eq!(r.describe(), "3 per 15 minute");
        assert_eq!(Rate::per_minute(10).describe(), "10 per 1 minute");
        assert_eq!(Rate::per_hour(20).describe(), "20 per 1 hour");
        let c = Count {
            bucket: "b".into(),
            rate: Rate::per_minute(2),
            hits: 3,
            window_start: 60,
        };
        assert!(c.exceeded());
        assert_eq!((c.remaining(), c.reset_at()), (0, 120));
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    fn ring() -> AccountKeyring {
        AccountKeyring::new(&[7; 32])
    }

    fn site() -> SiteKey {
        SiteKey::parse(Some("0192f1b4-5a6e-7c3d-8e9f-0a1b2c3d4e5f"))
    }

    fn subject(ip: Option<&str>) -> Subject {
        Subject {
            site: site(),
            account: ring().account(site(), &Email::parse("a@example.com").unwrap()),
            client: ip.map(|ip| ClientNetwork::of(ip.parse().unwrap(), NetworkPrefixes::default())),
        }
    }

    #[test]
    fn every_spelling_of_a_site_is_one_key() {
        let canonical = "0192f1b4-5a6e-7c3d-8e9f-0a1b2c3d4e5f";
        for spelling in [
            canonical.to_owned(),
            canonical.to_uppercase(),
            canonical.replace('-', ""),
            format!("{{{canonical}}}"),
            format!("{{{}}}", canonical.to_uppercase()),
        ] {
            assert_eq!(SiteKey::parse(Some(&spelling)).to_string(), canonical);
        }
        for junk in [
            None,
            Some(""),
            Some("1"),
            Some("urn:uuid:x"),
            Some(&"a".repeat(5000)),
        ] {
            assert_eq!(SiteKey::parse(junk), SiteKey::None);
        }
    }

    #[test]
    fn accounts_are_keyed_digests_of_the_site_and_address() {
        let a = ring().account(site(), &Email::parse("a@example.com").unwrap());
        assert_eq!(a.as_str().len(), 32);
        assert!(!a.as_str().contains("example"));
        assert_eq!(
            a,
            ring().account(site(), &Email::parse("a@example.com").unwrap())
        );
        assert_ne!(
            a,
            ring().account(SiteKey::None, &Email::parse("a@example.com").unwrap())
        );
        assert_ne!(
            a,
            ring().account(site(), &Email::parse("b@example.com").unwrap())
        );
        assert_ne!(
            a,
            AccountKeyring::new(&[8; 32]).account(site(), &Email::parse("a@example.com").unwrap())
        );
    }

    #[test]
    fn ipv6_clients_are_grouped_by_their_network() {
        let prefixes = NetworkPrefixes::default();
        let net = |ip: &str| ClientNetwork::of(ip.parse().unwrap(), prefixes).to_string();
        assert_eq!(net("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(net("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64");
        assert_ne!(net("2001:db8:1:3::1"), net("2001:db8:1:2::1"));
        assert_eq!(net("192.0.2.7"), "192.0.2.7/32");
        assert_eq!(net("::ffff:192.0.2.7"), "192.0.2.7/32");
        let wide = NetworkPrefixes { v4: 24, v6: 48 };
        assert_eq!(
            ClientNetwork::of("2001:db8:1:2::1".parse().unwrap(), wide).to_string(),
            "2001:db8:1::/48"
        );
        assert_eq!(
            ClientNetwork::of("192.0.2.7".parse().unwrap(), wide).to_string(),
            "192.0.2.0/24"
        );
        let silly = NetworkPrefixes { v4: 200, v6: 0 };
        assert_eq!(
            ClientNetwork::of("2001:db8::1".parse().unwrap(), silly).to_string(),
            "::/0"
        );
    }

    #[test]
    fn every_route_has_its_buckets_and_no_bucket_is_long() {
        let mut s = subject(None);
        s.client = Some(ClientNetwork::of(
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
            NetworkPrefixes { v4: 32, v6: 128 },
        ));
        for route in [
            Limited::Login,
            Limited::Register,
            Limited::PasswordReset,
            Limited::Invite,
            Limited::ChangePassword,
            Limited::EmailChange,
        ] {
            let hits = hits(route, &s);
            assert!(
                hits.iter().all(|h| h.bucket.len() <= MAX_BUCKET_LEN),
                "{hits:?}"
            );
            let kinds: Vec<&str> = hits
                .iter()
                .map(|h| match h.bucket.split(':').nth(1) {
                    _ if h.by == 0 => "failures",
                    kind => kind.unwrap_or_default(),
                })
                .collect();
            let expected: &[&str] = match route {
                Limited::Login => &["account", "ip", "failures"],
                Limited::Register => &["account", "ip"],
                Limited::PasswordReset => &["account", "site", "ip"],
                Limited::Invite => &["account", "site"],
                Limited::ChangePassword | Limited::EmailChange => &["account", "ip", "failures"],
            };
            assert_eq!(kinds, expected, "{route:?}");
            assert_eq!(hits.iter().any(|h| h.by == 0), route.checks_password());
        }
        assert_eq!(hits(Limited::Register, &subject(None)).len(), 1);
    }

    #[test]
    fn the_failure_bound_is_per_account_and_network() {
        let here = subject(Some("198.51.100.1")).failures();
        let there = subject(Some("203.0.113.1")).failures();
        assert_ne!(here.bucket, there.bucket);
        assert_eq!(here.rate, Rate::per_hour(FAILED_LOGINS_PER_HOUR));
    }

    fn count(bucket: &str, limit: u32, hits: u32) -> Count {
        Count {
            bucket: bucket.into(),
            rate: Rate::per_minute(limit),
            hits,
            window_start: 0,
        }
    }

    #[test]
    fn decisions() {
        let hits = hits(Limited::Login, &subject(Some("192.0.2.1")));
        let under = [
            count("a", 10, 3),
            count("i", 60, 50),
            count("login-fail:x", 100, 7),
        ];
        let d = decide(&hits, &under);
        assert_eq!(d.blocked, None);
        assert_eq!(d.reported.unwrap().bucket, "a");
        assert_eq!(d.failures_so_far, 7);

        let over = [
            count("a", 10, 11),
            count("i", 60, 50),
            count("login-fail:x", 100, 7),
        ];
        let d = decide(&hits, &over);
        assert_eq!(d.blocked.as_ref().unwrap().bucket, "a");
        assert!(!d.blocked_by_failures());
        assert_eq!(decide(&hits, &under).blocked_by(), None);

        // The failure bucket is only read, so reaching its limit already blocks.
        let bound = [
            count("a", 10, 1),
            count("i", 60, 1),
            count("login-fail:x", 100, 100),
        ];
        let d = decide(&hits, &bound);
        assert!(d.blocked_by_failures());
        assert_eq!(d.blocked_by(), Some("failed-login bound"));
        assert_eq!(d.reported.unwrap().bucket, "login-fail:x");

        let back = refunds(&hits);
        assert_eq!(back.len(), 2);
        assert!(back.iter().all(|h| h.by == -1));
        assert!(Limited::Invite.refunds(401));
        assert!(!Limited::Invite.refunds(201));
        assert!(!Limited::Login.refunds(401));
    }
}
