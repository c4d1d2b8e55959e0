//! Data-connection addresses as FTP writes them: `PORT`/`PASV` (`h1,h2,h3,h4,p1,p2`, RFC 959) and
//! `EPRT`/`EPSV` (`|proto|addr|port|`, RFC 2428), plus the anti-bounce rule for active mode.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

/// Parses a `PORT` argument: six comma-separated decimal bytes.
pub fn parse_port(arg: &str) -> Option<SocketAddr> {
    let mut bytes = [0u8; 6];
    let mut parts = arg.trim().split(',');
    for byte in bytes.iter_mut() {
        *byte = parts.next()?.trim().parse().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    let ip = Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
    let port = u16::from_be_bytes([bytes[4], bytes[5]]);
    Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
}

/// Parses an `EPRT` argument such as `|1|132.235.1.2|6275|` or `|2|::1|5282|`. The delimiter is
/// whatever the first character is (RFC 2428 §2).
pub fn parse_eprt(arg: &str) -> Option<SocketAddr> {
    let delim = arg.chars().next()?;
    if !(33..=126).contains(&(delim as u32)) {
        return None;
    }
    let fields: Vec<&str> = arg.split(delim).collect();
    let [empty, proto, host, port, end] = fields.as_slice() else {
        return None;
    };
    if !empty.is_empty() || !end.is_empty() {
        return None;
    }
    let ip: IpAddr = match *proto {
        "1" => IpAddr::V4(host.parse().ok()?),
        "2" => IpAddr::V6(host.parse().ok()?),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port.parse().ok()?))
}

/// The text of a `227` reply for a passive listener reachable at `ip:port`.
pub fn format_pasv(ip: Ipv4Addr, port: u16) -> String {
    let [a, b, c, d] = ip.octets();
    let [p1, p2] = port.to_be_bytes();
    format!("Entering Passive Mode ({a},{b},{c},{d},{p1},{p2}).")
}

/// The text of a `229` reply.
pub fn format_epsv(port: u16) -> String {
    format!("Entering Extended Passive Mode (|||{port}|).")
}

/// Why an active-mode target is refused, if it is. A client may only ask us to connect back to
/// itself, on an unprivileged port: anything else turns the server into a port scanner or a
/// relay (the "FTP bounce" attack, CERT CA-1997-27).
pub fn bounce_check(target: SocketAddr, control_peer: IpAddr) -> Result<(), &'static str> {
    if canonical(target.ip()) != canonical(control_peer) {
        return Err("Data connections go only to the client's own address.");
    }
    if target.port() < 1024 {
        return Err("Data connections go only to ports 1024 and above.");
    }
    Ok(())
}

/// Folds IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) to IPv4 so both spellings compare equal.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_round_trips_with_pasv_text() {
        let addr = parse_port("127,0,0,1,4,1").unwrap();
        assert_eq!(addr, "127.0.0.1:1025".parse().unwrap());
        assert_eq!(format_pasv(Ipv4Addr::LOCALHOST, 1025), "Entering Passive Mode (127,0,0,1,4,1).");
    }

    #[test]
    fn bad_port_arguments() {
        for bad in ["", "1,2,3,4,5", "1,2,3,4,5,6,7", "256,0,0,1,0,1", "a,b,c,d,e,f"] {
            assert_eq!(parse_port(bad), None, "{bad}");
        }
    }

    #[test]
    fn eprt_v4_v6_and_bad() {
        assert_eq!(parse_eprt("|1|132.235.1.2|6275|"), Some("132.235.1.2:6275".parse().unwrap()));
        assert_eq!(parse_eprt("!2!::1!5282!"), Some("[::1]:5282".parse().unwrap()));
        for bad in ["", "|3|1.2.3.4|5|", "|1|::1|5|", "|1|1.2.3.4|70000|", "|1|1.2.3.4|5", "|1|1.2.3.4|5|6|"] {
            assert_eq!(parse_eprt(bad), None, "{bad}");
        }
    }

    #[test]
    fn bounce_rules() {
        let me: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(bounce_check("127.0.0.1:5000".parse().unwrap(), me).is_ok());
        assert!(bounce_check("[::ffff:127.0.0.1]:5000".parse().unwrap(), me).is_ok());
        assert!(bounce_check("127.0.0.2:5000".parse().unwrap(), me).is_err());
        assert!(bounce_check("127.0.0.1:25".parse().unwrap(), me).is_err());
    }
}
