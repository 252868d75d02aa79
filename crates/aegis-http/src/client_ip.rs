//! The client's address for per-network limits and the security log (decisions 22 and 29): the
//! socket peer, unless the peer is a trusted proxy, in which case the proxy's header says who the
//! client is. A client talking to Aegis directly cannot choose its bucket by inventing headers.

use std::net::IpAddr;

use actix_web::HttpRequest;
use aegis_domain::ratelimit::{AccountKeyring, ClientNetwork, NetworkPrefixes, SiteKey, Subject};
use aegis_domain::user::Email;

use crate::security::Who;

/// An address range, `10.0.0.0/8` or `fd00::/8`; a bare address is a one-address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr/prefix` or a bare address.
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let network: IpAddr = addr.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Self { network, prefix })
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses as IPv4, so ranges match however the socket reports them.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// How to find the client address.
#[derive(Debug, Clone, Default)]
pub struct ClientIpPolicy {
    /// `TRUSTED_CLIENT_IP_HEADER`, e.g. `CF-Connecting-IP`.
    pub header: Option<String>,
    /// `TRUSTED_PROXIES`: peers whose headers are believed.
    pub proxies: Vec<Cidr>,
}

impl ClientIpPolicy {
    fn trusted(&self, peer: IpAddr) -> bool {
        self.proxies.iter().any(|c| c.contains(peer))
    }

    /// The client address, or `None` when the connection has no peer address (in-process tests).
    ///
    /// - From a peer outside `TRUSTED_PROXIES` (or with none configured): the peer.
    /// - From a trusted proxy, with `TRUSTED_CLIENT_IP_HEADER` set: that header, the only source;
    ///   without it (or unreadable), the proxy's own address.
    /// - From a trusted proxy, with no header set: the right-most `X-Forwarded-For` entry that is
    ///   not itself a trusted proxy, else the proxy.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = canonical(req.peer_addr()?.ip());
        if !self.trusted(peer) {
            return Some(peer);
        }
        if let Some(name) = self.header.as_deref() {
            let named = req
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<IpAddr>().ok())
                .map(canonical);
            return Some(named.unwrap_or(peer));
        }
        // From the right: each entry was added by the hop to its right. Stop at the first entry
        // that is not a trusted proxy; an entry that is not a plain address (or an unreadable
        // header) ends the chain we can believe, and the peer is used.
        let mut entries: Vec<&str> = Vec::new();
        for value in req.headers().get_all("X-Forwarded-For") {
            let Ok(value) = value.to_str() else {
                return Some(peer);
            };
            entries.extend(value.split(','));
        }
        for entry in entries.iter().rev() {
            let Ok(ip) = entry.trim().parse::<IpAddr>().map(canonical) else {
                return Some(peer);
            };
            if !self.trusted(ip) {
                return Some(ip);
            }
        }
        Some(peer)
    }
}

/// How requests are attributed to clients and accounts, for the limits and the security log.
#[derive(Debug, Clone)]
pub struct Clients {
    /// How the client address is found.
    pub policy: ClientIpPolicy,
    /// How addresses are grouped into networks (`RATELIMIT_IPV4_PREFIX`, `RATELIMIT_IPV6_PREFIX`).
    pub networks: NetworkPrefixes,
    /// Turns addresses into account digests.
    pub keyring: AccountKeyring,
}

impl Clients {
    /// What the limits count a request against, and whom a security event about it concerns.
    pub fn identify(
        &self,
        req: &HttpRequest,
        site: SiteKey,
        email: Option<&Email>,
    ) -> (Subject, Who) {
        let ip = self.policy.client_ip(req);
        let account = self.account(site, email);
        let subject = Subject {
            site,
            account: account.clone(),
            client: ip.map(|ip| ClientNetwork::of(ip, self.networks)),
        };
        let who = Who {
            site: Some(site),
            client: ip,
            account: Some(account),
        };
        (subject, who)
    }

    /// Whom a security event concerns.
    pub fn who(&self, req: &HttpRequest, site: SiteKey, email: Option<&Email>) -> Who {
        Who {
            site: Some(site),
            client: self.policy.client_ip(req),
            account: Some(self.account(site, email)),
        }
    }

    /// A security event's client alone (operator routes, where no site or account is named).
    pub fn client(&self, req: &HttpRequest) -> Who {
        Who {
            client: self.policy.client_ip(req),
            ..Who::default()
        }
    }

    fn account(
        &self,
        site: SiteKey,
        email: Option<&Email>,
    ) -> aegis_domain::ratelimit::AccountDigest {
        email.map_or_else(aegis_domain::ratelimit::AccountDigest::none, |e| {
            self.keyring.account(site, e)
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.1.2.3")) && !c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.0.0.1")));
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(Cidr::parse("192.0.2.7").unwrap().contains(ip("192.0.2.7")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nonsense").is_none());
    }

    #[test]
    fn untrusted_peers_cannot_choose_their_address() {
        let policy = ClientIpPolicy {
            header: Some("CF-Connecting-IP".into()),
            proxies: vec![Cidr::parse("10.0.0.0/8").unwrap()],
        };
        let spoof = TestRequest::default()
            .peer_addr("203.0.113.9:5000".parse().unwrap())
            .insert_header(("CF-Connecting-IP", "1.2.3.4"))
            .insert_header(("X-Forwarded-For", "5.6.7.8"))
            .to_http_request();
        assert_eq!(policy.client_ip(&spoof), Some(ip("203.0.113.9")));
        let via_proxy = TestRequest::default()
            .peer_addr("10.0.0.2:5000".parse().unwrap())
            .insert_header(("CF-Connecting-IP", "1.2.3.4"))
            .to_http_request();
        assert_eq!(policy.client_ip(&via_proxy), Some(ip("1.2.3.4")));
        let xff_only = ClientIpPolicy {
            header: None,
            proxies: vec![Cidr::parse("10.0.0.0/8").unwrap()],
        };
        let chained = TestRequest::default()
            .peer_addr("10.0.0.2:5000".parse().unwrap())
            .insert_header(("X-Forwarded-For", "9.9.9.9, 198.51.100.1, 10.0.0.3"))
            .to_http_request();
        assert_eq!(xff_only.client_ip(&chained), Some(ip("198.51.100.1")));
        // An entry that is not a plain address ends what can be believed: a forged entry to its
        // left is never chosen.
        for odd in [
            "6.6.6.6, 198.51.100.1:4711",
            "6.6.6.6, unknown",
            "6.6.6.6, [2001:db8::1]:443",
        ] {
            let req = TestRequest::default()
                .peer_addr("10.0.0.2:5000".parse().unwrap())
                .insert_header(("X-Forwarded-For", odd))
                .to_http_request();
            assert_eq!(xff_only.client_ip(&req), Some(ip("10.0.0.2")), "{odd}");
        }
        let plain = ClientIpPolicy::default();
        assert_eq!(plain.client_ip(&spoof), Some(ip("203.0.113.9")));
        // A header without proxies is believed from nobody.
        let header_only = ClientIpPolicy {
            header: Some("CF-Connecting-IP".into()),
            proxies: Vec::new(),
        };
        assert_eq!(header_only.client_ip(&spoof), Some(ip("203.0.113.9")));
    }

    #[test]
    fn a_configured_header_is_the_only_source() {
        let policy = ClientIpPolicy {
            header: Some("CF-Connecting-IP".into()),
            proxies: vec![Cidr::parse("10.0.0.0/8").unwrap()],
        };
        let proxy = || TestRequest::default().peer_addr("10.0.0.2:5000".parse().unwrap());
        // X-Forwarded-For is ignored when a header is configured.
        let xff = proxy()
            .insert_header(("X-Forwarded-For", "198.51.100.1"))
            .to_http_request();
        assert_eq!(policy.client_ip(&xff), Some(ip("10.0.0.2")));
        // Unreadable or unparsable header values count against the proxy itself.
        for bad in [&b"\xff\xfe"[..], b"not-an-ip", b"1.2.3.4, 5.6.7.8", b""] {
            let req = proxy()
                .insert_header((
                    "CF-Connecting-IP",
                    actix_web::http::header::HeaderValue::from_bytes(bad).unwrap(),
                ))
                .to_http_request();
            assert_eq!(policy.client_ip(&req), Some(ip("10.0.0.2")), "{bad:?}");
        }
        let v6 = proxy()
            .insert_header(("CF-Connecting-IP", " 2001:db8::7 "))
            .to_http_request();
        assert_eq!(policy.client_ip(&v6), Some(ip("2001:db8::7")));
    }
}
