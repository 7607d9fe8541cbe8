//! Which addresses a connector's request may reach: every resolved address is
//! classified, and one in a refused range refuses the whole request unless the
//! operator allowed that range. Never decides by name, only by address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why an address is refused by default, or `None` if it is a public address.
/// IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4)
/// are judged by the IPv4 address they reach.
pub(crate) fn refused_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip == Ipv4Addr::new(169, 254, 169, 254) => "a cloud metadata address",
        _ if ip.is_unspecified() => "the unspecified address",
        _ if ip.is_broadcast() => "the broadcast address",
        (0, _, _) => "a \"this network\" address",
        (127, _, _) => "a loopback address",
        (10, _, _) => "a private address",
        (172, 16..=31, _) => "a private address",
        (192, 168, _) => "a private address",
        (169, 254, _) => "a link-local address",
        (100, 64..=127, _) => "a shared (carrier-grade NAT) address",
        (192, 0, 0) => "an IETF protocol address",
        (198, 18..=19, _) => "a benchmarking address",
        (224..=239, _, _) => "a multicast address",
        (240..=255, _, _) => "a reserved address",
        _ => return None,
    })
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(ip) {
        return refused_v4(v4);
    }
    let segments = ip.segments();
    Some(match segments[0] {
        _ if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) => {
            "a cloud metadata address"
        }
        _ if ip.is_unspecified() => "the unspecified address",
        _ if ip.is_loopback() => "a loopback address",
        0xfc00..=0xfdff => "a private (unique local) address",
        0xfe80..=0xfebf => "a link-local address",
        0xfec0..=0xfeff => "a site-local address",
        0xff00..=0xffff => "a multicast address",
        // Teredo hides the IPv4 address it reaches; refused rather than decoded.
        0x2001 if segments[1] == 0 => "a Teredo tunnel address",
        // 64:ff9b:1::/48, the local-use NAT64 prefix.
        0x0064 if segments[1] == 0xff9b && segments[2] == 1 => "a local NAT64 address",
        // 100::/64, discard-only.
        0x0100 if segments[1..4] == [0, 0, 0] => "a discard-only address",
        _ => return None,
    })
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (::ffff:a.b.c.d),
/// IPv4-compatible (::a.b.c.d, deprecated but still routed by some stacks),
/// NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:aabb:ccdd::).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(low(hi, lo)),
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) > (0, 1) => Some(low(hi, lo)),
        [0x0064, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

/// Checks every address a host resolved to: all must be public or inside one
/// of the operator's allowances. Returns the first refused address and why.
pub(crate) fn vet(addrs: &[IpAddr], allow: &[IpNet]) -> Result<(), (IpAddr, &'static str)> {
    for &ip in addrs {
        let Some(why) = refused_range(ip) else {
            continue;
        };
        let canonical = ip.to_canonical();
        if !allow
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&canonical))
        {
            return Err((ip, why));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> Option<&'static str> {
        refused_range(s.parse().expect("an address"))
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "93.184.215.14",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "192.0.2.1",
            "2606:4700::6810:84e5",
            "::ffff:93.184.215.14",
            "64:ff9b::808:808",
            "2002:5db8:d70e::1",
        ] {
            assert_eq!(refused(ip), None, "{ip}");
        }
    }

    #[test]
    fn internal_ipv4_ranges_are_refused() {
        for (ip, why) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.0.0.7", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "metadata"),
            ("169.254.1.1", "link-local"),
            ("100.64.0.1", "carrier-grade"),
            ("100.127.255.255", "carrier-grade"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "this network"),
            ("255.255.255.255", "broadcast"),
            ("224.0.0.1", "multicast"),
            ("240.0.0.1", "reserved"),
            ("198.18.0.1", "benchmarking"),
            ("192.0.0.8", "IETF"),
        ] {
            let reason = refused(ip).unwrap_or_else(|| panic!("{ip} is refused"));
            assert!(reason.contains(why), "{ip}: {reason}");
        }
    }

    #[test]
    fn internal_ipv6_ranges_are_refused() {
        for (ip, why) in [
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fc00::1", "private"),
            ("fd12:3456::1", "private"),
            ("fd00:ec2::254", "metadata"),
            ("fe80::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("2001:0:4136:e378::1", "Teredo"),
            ("64:ff9b:1::a00:7", "NAT64"),
            ("100::1", "discard"),
        ] {
            let reason = refused(ip).unwrap_or_else(|| panic!("{ip} is refused"));
            assert!(reason.contains(why), "{ip}: {reason}");
        }
    }

    #[test]
    fn ipv6_forms_of_refused_ipv4_addresses_are_refused() {
        for (ip, why) in [
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "metadata"),
            ("::ffff:a9fe:a9fe", "metadata"),
            ("::ffff:10.0.0.7", "private"),
            ("::ffff:0.0.0.0", "unspecified"),
            ("::127.0.0.1", "loopback"),
            ("::10.0.0.7", "private"),
            ("::0.0.1.2", "this network"),
            ("64:ff9b::169.254.169.254", "metadata"),
            ("64:ff9b::7f00:1", "loopback"),
            ("2002:a9fe:a9fe::1", "metadata"),
            ("2002:c0a8:0101::", "private"),
        ] {
            let reason = refused(ip).unwrap_or_else(|| panic!("{ip} is refused"));
            assert!(reason.contains(why), "{ip}: {reason}");
        }
    }

    #[test]
    fn one_refused_address_refuses_the_whole_answer() {
        let addrs: Vec<IpAddr> = vec![
            "93.184.215.14".parse().unwrap(),
            "10.0.0.7".parse().unwrap(),
        ];
        let (ip, why) = vet(&addrs, &[]).expect_err("refused");
        assert_eq!(ip, "10.0.0.7".parse::<IpAddr>().unwrap());
        assert!(why.contains("private"));
    }

    #[test]
    fn an_allowance_admits_only_its_own_range() {
        let allow: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(vet(&[loopback], &allow), Ok(()));
        // The mapped form of an allowed address is the same address.
        assert_eq!(vet(&["::ffff:127.0.0.1".parse().unwrap()], &allow), Ok(()));
        assert!(vet(&["127.0.0.2".parse().unwrap()], &allow).is_err());
        assert!(vet(&[loopback, "169.254.169.254".parse().unwrap()], &allow).is_err());
        assert!(vet(&["::1".parse().unwrap()], &allow).is_err());
    }
}
