//! The client's address for per-IP limits (decision 22): the socket peer, unless the peer is a
//! trusted proxy, in which case the proxy's header says who the client is. A client talking to Aegis
//! directly cannot choose its bucket by inventing headers.

use std::net::IpAddr;

use actix_web::HttpRequest;

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
    /// - With `TRUSTED_PROXIES`: from a trusted peer, the configured header when present, else the
    ///   right-most `X-Forwarded-For` entry that is not itself a trusted proxy; from anyone else,
    ///   the peer.
    /// - With only `TRUSTED_CLIENT_IP_HEADER`: the header when present (the operator asserts every
    ///   request comes through that proxy), else the peer.
    /// - With neither: the peer.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr().map(|a| canonical(a.ip()));
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<IpAddr>().ok())
                .map(canonical)
        };
        if !self.proxies.is_empty() {
            let peer = peer?;
            if !self.trusted(peer) {
                return Some(peer);
            }
            if let Some(ip) = self.header.as_deref().and_then(header) {
                return Some(ip);
            }
            let forwarded = req
                .headers()
                .get_all("X-Forwarded-For")
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|part| part.trim().parse::<IpAddr>().ok().map(canonical))
                .collect::<Vec<_>>();
            return Some(
                forwarded
                    .into_iter()
                    .rev()
                    .find(|ip| !self.trusted(*ip))
                    .unwrap_or(peer),
            );
        }
        if let Some(ip) = self.header.as_deref().and_then(header) {
            return Some(ip);
        }
        peer
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
        let plain = ClientIpPolicy::default();
        assert_eq!(plain.client_ip(&spoof), Some(ip("203.0.113.9")));
    }
}
