//! The visitor's address behind trusted proxies: what routes a guest by
//! region and keys the per-IP rate limit.
//!
//! `X-Forwarded-For` is whatever the client wrote, plus one address per
//! proxy on the way, each appended on the right. Only the part our own
//! proxies appended can be believed, so it is read from the right, and only
//! when the connection itself comes from a trusted proxy; the first address
//! that is not one of ours is the client. Anything left of it is the
//! client's own claim and never counts.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The proxies (load balancers, ingress) whose `X-Forwarded-For` is
/// believed. Empty: nobody's, the peer address is the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<Net>,
}

/// A configured entry that is not an address or a CIDR range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trusted proxy {entry:?} is not an IP address or CIDR range ({reason})")]
pub struct BadProxyEntry {
    pub entry: String,
    pub reason: &'static str,
}

/// One range, held as IPv6 (IPv4 as `::ffff:a.b.c.d`, its prefix plus 96).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: u128,
    mask: u128,
}

impl fmt::Debug for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = Ipv6Addr::from(self.addr).to_canonical();
        let bits = self.mask.leading_ones();
        let bits = if ip.is_ipv4() {
            bits.saturating_sub(96)
        } else {
            bits
        };
        write!(f, "{ip}/{bits}")
    }
}

impl TrustedProxies {
    /// Parses entries like `10.0.0.0/8`, `::1/128` or a bare address (one
    /// host: /32 or /128). Surrounding spaces are ignored; bits past the
    /// prefix are ignored too (`10.1.2.3/8` is `10.0.0.0/8`).
    pub fn new<I, S>(entries: I) -> Result<Self, BadProxyEntry>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nets = entries
            .into_iter()
            .map(|e| Net::parse(e.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { nets })
    }

    /// True when `ip` is inside one of the ranges (an IPv4-mapped IPv6
    /// address counts as its IPv4 address).
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let v6 = as_u128(ip);
        self.nets.iter().any(|n| v6 & n.mask == n.addr)
    }

    /// The client's address, given the connection's peer and its
    /// `X-Forwarded-For` (several headers joined with commas, in order).
    ///
    /// From an untrusted peer the header is ignored. From a trusted one it
    /// is walked from the right past our own proxies; the first other
    /// address is the client. If every address is a proxy of ours, the
    /// leftmost is. An entry that is not an address (`unknown`, garbage,
    /// empty) ends the walk at the last good address: what is left of it
    /// was not written by a proxy we know. Entries with a port
    /// (`1.2.3.4:80`, `[2001:db8::1]:443`) are read without it. IPv4-mapped
    /// IPv6 addresses come back as IPv4.
    pub fn client_ip(&self, peer: IpAddr, x_forwarded_for: Option<&str>) -> IpAddr {
        let mut last = peer.to_canonical();
        if !self.is_trusted(last) {
            return last;
        }
        let Some(header) = x_forwarded_for else {
            return last;
        };
        for entry in header.rsplit(',') {
            let Some(ip) = parse_forwarded(entry.trim()) else {
                return last;
            };
            if !self.is_trusted(ip) {
                return ip;
            }
            last = ip;
        }
        last
    }
}

impl Net {
    fn parse(entry: &str) -> Result<Self, BadProxyEntry> {
        let bad = |reason| BadProxyEntry {
            entry: entry.to_owned(),
            reason,
        };
        let text = entry.trim();
        let (ip, bits) = match text.split_once('/') {
            Some((ip, bits)) => (ip, Some(bits)),
            None => (text, None),
        };
        let ip: IpAddr = ip.parse().map_err(|_| bad("not an IP address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let bits: u32 = match bits {
            None => max,
            Some(b) => match b.parse() {
                Ok(n) if n <= max && !b.starts_with('+') => n,
                _ => {
                    return Err(bad(if ip.is_ipv4() {
                        "the prefix length must be 0 to 32"
                    } else {
                        "the prefix length must be 0 to 128"
                    }));
                }
            },
        };
        let bits = if ip.is_ipv4() { bits + 96 } else { bits };
        let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
        Ok(Net {
            addr: as_u128(ip) & mask,
            mask,
        })
    }
}

/// The address as IPv6 bits, IPv4 mapped into `::ffff:0:0/96`.
fn as_u128(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies::new(["10.0.0.0/8", "127.0.0.1", "::1/128", "2001:db8:1::/48"]).unwrap()
    }

    #[test]
    fn ranges_and_bare_addresses_are_parsed() {
        let p = proxies();
        for yes in [
            "10.0.0.0",
            "10.255.255.255",
            "10.1.2.3",
            "127.0.0.1",
            "::1",
            "2001:db8:1::",
            "2001:db8:1:ffff:ffff:ffff:ffff:ffff",
            "::ffff:10.9.8.7",
        ] {
            assert!(p.is_trusted(ip(yes)), "{yes}");
        }
        for no in [
            "9.255.255.255",
            "11.0.0.0",
            "127.0.0.2",
            "::2",
            "2001:db8:2::",
            "::ffff:11.0.0.1",
            // IPv4-compatible (not mapped) is a different address.
            "::10.0.0.1",
        ] {
            assert!(!p.is_trusted(ip(no)), "{no}");
        }
    }

    #[test]
    fn edge_prefixes() {
        let all = TrustedProxies::new(["0.0.0.0/0", "::/0"]).unwrap();
        assert!(all.is_trusted(ip("203.0.113.9")));
        assert!(all.is_trusted(ip("2001:db8::9")));
        let v4_only = TrustedProxies::new(["0.0.0.0/0"]).unwrap();
        assert!(!v4_only.is_trusted(ip("2001:db8::9")));
        // Host bits past the prefix are dropped.
        let sloppy = TrustedProxies::new([" 192.168.7.9/16 "]).unwrap();
        assert!(sloppy.is_trusted(ip("192.168.200.1")));
        assert!(!sloppy.is_trusted(ip("192.169.0.1")));
        // A mapped address in the configuration is its IPv4 address.
        let mapped = TrustedProxies::new(["::ffff:10.0.0.0/104"]).unwrap();
        assert!(mapped.is_trusted(ip("10.3.3.3")));
        assert!(TrustedProxies::default().nets.is_empty());
        assert!(!TrustedProxies::default().is_trusted(ip("127.0.0.1")));
    }

    #[test]
    fn bad_entries_are_named() {
        for (entry, reason) in [
            ("10.0.0.0/33", "0 to 32"),
            ("::/129", "0 to 128"),
            ("10.0.0.0/", "0 to 32"),
            ("10.0.0.0/-1", "0 to 32"),
            ("10.0.0.0/+8", "0 to 32"),
            ("10.0.0.0/8/8", "0 to 32"),
            ("10.0.0", "not an IP address"),
            ("example.com", "not an IP address"),
            ("", "not an IP address"),
            ("[::1]", "not an IP address"),
        ] {
            let e = TrustedProxies::new(["127.0.0.1", entry]).unwrap_err();
            assert_eq!(e.entry, entry);
            assert!(e.reason.contains(reason), "{entry}: {e}");
            assert!(e.to_string().contains(&format!("{entry:?}")), "{e}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let p = proxies();
        assert_eq!(
            p.client_ip(ip("203.0.113.5"), Some("1.1.1.1, 10.0.0.1")),
            ip("203.0.113.5")
        );
        assert_eq!(p.client_ip(ip("203.0.113.5"), None), ip("203.0.113.5"));
        // Nobody trusted: the header never counts.
        assert_eq!(
            TrustedProxies::default().client_ip(ip("10.0.0.1"), Some("1.1.1.1")),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn behind_proxies_the_first_untrusted_address_from_the_right_is_the_client() {
        let p = proxies();
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), Some("198.51.100.7")),
            ip("198.51.100.7")
        );
        // Two of our proxies: the edge appended the client, the inner one the edge.
        assert_eq!(
            p.client_ip(ip("127.0.0.1"), Some("198.51.100.7, 10.0.0.2")),
            ip("198.51.100.7")
        );
        // No header: the proxy itself is all there is.
        assert_eq!(p.client_ip(ip("10.0.0.1"), None), ip("10.0.0.1"));
        // Every address ours: the leftmost.
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), Some("10.0.0.9,10.0.0.8")),
            ip("10.0.0.9")
        );
        // IPv6 clients.
        assert_eq!(
            p.client_ip(ip("::1"), Some("2001:db8:99::5")),
            ip("2001:db8:99::5")
        );
    }

    #[test]
    fn a_spoofed_header_through_a_trusted_proxy_does_not_count() {
        let p = proxies();
        // The client wrote "1.2.3.4, 10.0.0.3"; our proxy appended what it saw.
        let header = "1.2.3.4, 10.0.0.3, 198.51.100.7";
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), Some(header)),
            ip("198.51.100.7")
        );
        // Pretending to be one of our proxies gets the client nothing either.
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), Some("10.0.0.3, 198.51.100.7")),
            ip("198.51.100.7")
        );
        // A second header line is joined after the first, still read from the right.
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), Some("1.2.3.4,198.51.100.7")),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn unparsable_entries_stop_the_walk_at_the_last_good_address() {
        let p = proxies();
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), Some("198.51.100.7, unknown, 10.0.0.2")),
            ip("10.0.0.2")
        );
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), Some("1.1.1.1, garbage")),
            ip("10.0.0.1")
        );
        for header in ["", " ", ",", "1.1.1.1,", "\u{0}", "999.1.1.1", "::ffff:zz"] {
            assert_eq!(
                p.client_ip(ip("10.0.0.1"), Some(header)),
                ip("10.0.0.1"),
                "{header:?}"
            );
        }
        let long = "10.0.0.5,".repeat(10_000) + "x";
        assert_eq!(p.client_ip(ip("10.0.0.1"), Some(&long)), ip("10.0.0.1"));
    }

    #[test]
    fn ports_are_dropped_and_mapped_addresses_come_back_as_ipv4() {
        let p = proxies();
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), Some("198.51.100.7:5123")),
            ip("198.51.100.7")
        );
        assert_eq!(
            p.client_ip(ip("10.0.0.1"), Some("[2001:db8:99::5]:443")),
            ip("2001:db8:99::5")
        );
        // A dual-stack listener sees IPv4 proxies as mapped addresses.
        assert_eq!(
            p.client_ip(ip("::ffff:10.0.0.1"), Some("::ffff:198.51.100.7")),
            ip("198.51.100.7")
        );
        assert_eq!(
            p.client_ip(ip("::ffff:203.0.113.5"), Some("1.1.1.1")),
            ip("203.0.113.5")
        );
        assert_eq!(
            p.client_ip(ip("::ffff:10.0.0.1"), Some("::ffff:10.0.0.2")),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn debug_shows_the_ranges() {
        let p = TrustedProxies::new(["10.1.2.3/8", "::1"]).unwrap();
        assert_eq!(
            format!("{p:?}"),
            "TrustedProxies { nets: [10.0.0.0/8, ::1/128] }"
        );
    }
}
