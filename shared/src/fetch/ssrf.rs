//! Where a partner's feed may be fetched from (issue 12, ADR 0025), pure: a
//! URL's scheme, port and host, and every address a host resolves to. The
//! fetcher checks a URL when a profile is saved (a literal address or a
//! scheme that can never be fetched), and again at fetch time on every
//! address the name resolves to and on every redirect, then connects to the
//! address it checked (no second resolution, so DNS rebinding cannot switch
//! it).
//!
//! Refused: loopback, private (RFC 1918), link-local (169.254.0.0/16, the
//! instance metadata address among them; fe80::/10), unspecified, multicast,
//! broadcast, carrier-grade NAT (100.64.0.0/10), IETF-reserved and
//! documentation ranges, IPv6 unique-local (fc00::/7, the EC2 IPv6 metadata
//! address fd00:ec2::254 among them), site-local, and IPv4 hidden in IPv6
//! (mapped, compatible, NAT64, 6to4, Teredo): a private one for its range, a
//! public one too (a fetch goes to the IPv4 address itself, not through a
//! translator).
//! Decimal, octal and hex spellings of an IPv4 address (`2130706433`,
//! `0177.0.0.1`, `0x7f.1`) are normalised by the URL parser (WHATWG) before
//! any of this sees them.

use reqwest::Url;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What a deployment allows beyond the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowance {
    /// `http` as well as `https` (the local sandbox only).
    pub http: bool,
    /// Ports besides 443 (and 80 for http); empty when deployed.
    pub ports: Vec<u16>,
    /// Addresses and ports reachable whatever their range (the local
    /// sandbox's feed server on 127.0.0.1:<port>); empty when deployed.
    pub exceptions: Vec<SocketAddr>,
}

/// Why a URL or an address may not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the scheme {0} is not allowed (https only)")]
    Scheme(String),
    #[error("port {0} is not allowed (443, or 80 for http)")]
    Port(u16),
    #[error("a URL with a user name or password is not allowed (use the profile's auth)")]
    Credentials,
    #[error("the URL has no host")]
    NoHost,
    #[error("{ip} is a {range} address")]
    Address { ip: IpAddr, range: &'static str },
    #[error("the host resolves to no address")]
    Unresolved,
    /// The resolver failed (not an answer about the name): worth a retry.
    #[error("the host could not be resolved now: {0}")]
    Lookup(String),
}

impl Refused {
    /// Stable, for machines (`details.reason_code`, the fetch record).
    pub fn code(&self) -> &'static str {
        match self {
            Refused::Scheme(_) => "scheme_not_allowed",
            Refused::Port(_) => "port_not_allowed",
            Refused::Credentials => "credentials_in_url",
            Refused::NoHost => "no_host",
            Refused::Address { .. } => "address_not_allowed",
            Refused::Unresolved => "unresolved",
            Refused::Lookup(_) => "lookup_failed",
        }
    }
}

/// The URL's own parts: scheme, credentials, port, and the host when it is a
/// literal address. A name is checked when it is resolved ([`check_address`]).
pub fn check_url(url: &Url, allow: &Allowance) -> Result<(), Refused> {
    let scheme = url.scheme();
    if !(scheme == "https" || (scheme == "http" && allow.http)) {
        return Err(Refused::Scheme(scheme.to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused::Credentials);
    }
    let port = url.port_or_known_default().ok_or(Refused::NoHost)?;
    let host = url.host().ok_or(Refused::NoHost)?;
    let literal = match host {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    };
    if let Some(ip) = literal
        && allow.exceptions.contains(&SocketAddr::new(ip, port))
    {
        return Ok(());
    }
    let default = if scheme == "https" { 443 } else { 80 };
    if port != default && !allow.ports.contains(&port) {
        return Err(Refused::Port(port));
    }
    match literal {
        Some(ip) => check_address(SocketAddr::new(ip, port), allow),
        None => Ok(()),
    }
}

/// One address a host resolved to (or a literal one), with its port.
pub fn check_address(addr: SocketAddr, allow: &Allowance) -> Result<(), Refused> {
    if allow.exceptions.contains(&addr) {
        return Ok(());
    }
    match forbidden_range(addr.ip()) {
        Some(range) => Err(Refused::Address {
            ip: addr.ip(),
            range,
        }),
        None => Ok(()),
    }
}

/// The range that makes `ip` unreachable for a fetch, or `None` for a public
/// unicast address.
pub fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_range(v4),
        IpAddr::V6(v6) => v6_range(v6),
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified (this network)",
        (127, _, _) => "loopback",
        (10, _, _) => "private",
        (172, 16..=31, _) => "private",
        (192, 168, _) => "private",
        (169, 254, _) => "link-local (instance metadata)",
        (100, 64..=127, _) => "carrier-grade NAT",
        (192, 0, 0) => "IETF protocol assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (192, 88, 99) => "6to4 relay",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved or broadcast",
        _ => return None,
    })
}

fn v6_range(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(ip) {
        return v4_range(v4).or(Some("IPv4 embedded in IPv6"));
    }
    let s = ip.segments();
    Some(match s[0] {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        0xfe80..=0xfebf => "link-local",
        0xfec0..=0xfeff => "site-local",
        0xfc00..=0xfdff => "unique-local (instance metadata)",
        0xff00..=0xffff => "multicast",
        0x2001 if s[1] == 0x0db8 => "documentation",
        0x3fff if s[1] < 0x1000 => "documentation",
        0x2001 if s[1] == 0x0002 && s[2] == 0 => "benchmarking",
        0x0100 if s[1..4] == [0, 0, 0] => "discard",
        // anything outside 2000::/3 is unassigned or special
        x if !(0x2000..=0x3fff).contains(&x) => "not global unicast",
        _ => return None,
    })
}

/// The IPv4 address an IPv6 one carries: mapped (`::ffff:a.b.c.d`),
/// compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`), 6to4 (`2002::/16`) and
/// Teredo (`2001::/32`, the client address inverted).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let o = ip.octets();
    let last = || Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(last()),
        [0, 0, 0, 0, 0, 0, _, _] if !ip.is_unspecified() && !ip.is_loopback() => Some(last()),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(last()),
        [0x2002, _, _, _, _, _, _, _] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        [0x2001, 0, _, _, _, _, _, _] => Some(Ipv4Addr::new(!o[12], !o[13], !o[14], !o[15])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn deployed() -> Allowance {
        Allowance::default()
    }

    #[test]
    fn every_spelling_of_a_private_address_is_refused() {
        for bad in [
            "https://127.0.0.1/feed.csv",
            "https://localhost./feed.csv",
            "https://[::1]/feed.csv",
            "https://10.0.0.1/feed.csv",
            "https://172.16.0.1/feed.csv",
            "https://172.31.255.255/feed.csv",
            "https://192.168.1.1/feed.csv",
            "https://169.254.169.254/latest/meta-data/",
            "https://0.0.0.0/feed.csv",
            "https://2130706433/feed.csv",
            "https://0177.0.0.1/feed.csv",
            "https://0x7f.0.0.1/feed.csv",
            "https://0x7f000001/feed.csv",
            "https://127.1/feed.csv",
            "https://[::ffff:127.0.0.1]/feed.csv",
            "https://[::ffff:7f00:1]/feed.csv",
            "https://[::127.0.0.1]/feed.csv",
            "https://[64:ff9b::a9fe:a9fe]/feed.csv",
            "https://[2002:a9fe:a9fe::1]/feed.csv",
            "https://[fd00:ec2::254]/feed.csv",
            "https://[fe80::1]/feed.csv",
            "https://[::]/feed.csv",
            "https://100.64.0.1/feed.csv",
            "https://224.0.0.1/feed.csv",
            "https://255.255.255.255/feed.csv",
        ] {
            let u = url(bad);
            let refused = check_url(&u, &deployed());
            // `localhost.` is a name: refused when it resolves to loopback
            if u.host_str() == Some("localhost.") {
                assert!(refused.is_ok());
                continue;
            }
            assert!(
                matches!(refused, Err(Refused::Address { .. })),
                "{bad}: {refused:?}"
            );
        }
    }

    #[test]
    fn schemes_ports_and_credentials_are_checked() {
        assert_eq!(
            check_url(&url("http://feeds.example.com/f.csv"), &deployed()),
            Err(Refused::Scheme("http".into()))
        );
        assert_eq!(
            check_url(&url("ftp://feeds.example.com/f.csv"), &deployed()),
            Err(Refused::Scheme("ftp".into()))
        );
        assert_eq!(
            check_url(&url("file:///etc/passwd"), &deployed()),
            Err(Refused::Scheme("file".into()))
        );
        assert_eq!(
            check_url(&url("https://feeds.example.com:8443/f.csv"), &deployed()),
            Err(Refused::Port(8443))
        );
        assert_eq!(
            check_url(&url("https://user:pw@feeds.example.com/f.csv"), &deployed()),
            Err(Refused::Credentials)
        );
        assert!(check_url(&url("https://feeds.example.com/f.csv"), &deployed()).is_ok());
        assert!(check_url(&url("https://93.184.215.14/f.csv"), &deployed()).is_ok());
        let local = Allowance {
            http: true,
            ports: Vec::new(),
            exceptions: vec!["127.0.0.1:3002".parse().unwrap()],
        };
        assert!(check_url(&url("http://127.0.0.1:3002/feeds/a.csv"), &local).is_ok());
        assert!(check_url(&url("http://127.0.0.1:3003/feeds/a.csv"), &local).is_err());
        assert!(check_url(&url("http://feeds.example.com/f.csv"), &local).is_ok());
    }

    #[test]
    fn public_addresses_pass_and_embedded_private_ones_do_not() {
        for ok in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700::1111",
            "172.32.0.1",
            "100.128.0.1",
        ] {
            assert_eq!(forbidden_range(ok.parse().unwrap()), None, "{ok}");
        }
        for bad in [
            "::ffff:10.0.0.1",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "64:ff9b::10.1.1.1",
            "2001:db8::1",
            "3fff::1",
            "2001:2::1",
            "fc00::1",
            "ff02::1",
            "192.0.0.8",
            "198.18.0.1",
        ] {
            assert!(forbidden_range(bad.parse().unwrap()).is_some(), "{bad}");
        }
    }
}

/// Resolves `url`'s host once and checks every address it gives (one bad
/// address refuses the host: a name that mixes public and private addresses
/// is a rebinding attempt or a mistake). The caller connects to the
/// addresses returned, never to the name again.
pub async fn resolve(url: &Url, allow: &Allowance) -> Result<Vec<SocketAddr>, Refused> {
    check_url(url, allow)?;
    let port = url.port_or_known_default().ok_or(Refused::NoHost)?;
    let addrs: Vec<SocketAddr> = match url.host().ok_or(Refused::NoHost)? {
        url::Host::Ipv4(v4) => vec![SocketAddr::new(IpAddr::V4(v4), port)],
        url::Host::Ipv6(v6) => vec![SocketAddr::new(IpAddr::V6(v6), port)],
        url::Host::Domain(name) => match tokio::net::lookup_host((name, port)).await {
            Ok(found) => found.collect(),
            // no such name; a resolver that failed is told apart by the caller
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Refused::Lookup(e.to_string())),
        },
    };
    if addrs.is_empty() {
        return Err(Refused::Unresolved);
    }
    for addr in &addrs {
        check_address(*addr, allow)?;
    }
    Ok(addrs)
}

#[cfg(test)]
mod resolving {
    use super::*;

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused() {
        let refused = resolve(
            &Url::parse("https://localhost/feed.csv").unwrap(),
            &Allowance::default(),
        )
        .await;
        assert!(
            matches!(
                refused,
                Err(Refused::Address {
                    range: "loopback",
                    ..
                })
            ),
            "{refused:?}"
        );
        let literal = resolve(
            &Url::parse("https://[::ffff:169.254.169.254]/").unwrap(),
            &Allowance::default(),
        )
        .await;
        assert!(
            matches!(literal, Err(Refused::Address { .. })),
            "{literal:?}"
        );
    }
}
