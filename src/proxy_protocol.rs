//! The PROXY protocol (HAProxy's, versions 1 and 2), receiving side, sans-IO: the header a TCP
//! load balancer puts in front of a connection's first byte to name the real client. Only the
//! parser lives here; reading the socket is `conn::awaiting_header`.
//!
//! ```text
//! v1: "PROXY TCP4 203.0.113.9 192.0.2.1 51234 21\r\n"        text, at most 107 bytes
//!     "PROXY UNKNOWN ...\r\n"                                 addresses not known
//! v2: \r\n\r\n\0\r\nQUIT\n  ver|cmd  family|proto  length(BE16)  addresses  TLVs
//!     12 bytes signature    1 byte   1 byte        2 bytes       length bytes
//! ```
//! `parse` never asks for more than `MAX_HEADER` bytes: the caller peeks at most that much.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest v1 header the specification allows, CRLF included.
pub const MAX_V1: usize = 107;
/// v2's fixed part: signature, version and command, family and protocol, length.
const V2_FIXED: usize = 16;
/// The longest v2 address block (addresses and TLVs) we take. The specification allows 64 KiB,
/// but a balancer sends 12 (TCP4) or 36 (TCP6) bytes plus a few TLVs; a bound keeps the bytes a
/// connection may make us look at small.
pub const MAX_V2_BODY: usize = 1024;
/// Enough bytes to hold any header `parse` accepts.
pub const MAX_HEADER: usize = V2_FIXED + MAX_V2_BODY;

const V1_PREFIX: &[u8] = b"PROXY ";
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Whom the connection is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addresses {
    /// The balancer relays a client: `source` is the client, `destination` the address the
    /// client reached the balancer at.
    Proxied { source: SocketAddr, destination: SocketAddr },
    /// The balancer speaks for itself (v2 `LOCAL`, e.g. a health check) or does not know the
    /// client (v1 `UNKNOWN`, v2 `UNSPEC`/`UNIX`): the connection's own endpoints stand.
    Local,
}

impl Addresses {
    /// The client's address: the header's, or `connection_peer` when it names none.
    pub fn client(&self, connection_peer: SocketAddr) -> SocketAddr {
        match self {
            Addresses::Proxied { source, .. } => *source,
            Addresses::Local => connection_peer,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// What has arrived is a valid beginning; wait for more.
    Incomplete,
    /// A whole header: the stream's own bytes start after `length` bytes.
    Header { addresses: Addresses, length: usize },
}

/// Why the bytes are not a PROXY header. The connection is to be closed.
#[derive(Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Neither signature: the peer is not a balancer speaking the PROXY protocol.
    NoSignature,
    /// v1 without CRLF within 107 bytes.
    V1TooLong,
    /// A v1 line that does not follow the grammar.
    V1Syntax(&'static str),
    /// v2 version nibble other than 2, or a command other than LOCAL/PROXY.
    V2VersionOrCommand(u8),
    /// A family/protocol byte for something other than a TCP stream.
    V2Family(u8),
    /// The length field is shorter than the family's addresses or longer than `MAX_V2_BODY`.
    V2Length(usize),
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::NoSignature => write!(f, "no PROXY protocol signature"),
            Invalid::V1TooLong => write!(f, "v1 header without CRLF in {MAX_V1} bytes"),
            Invalid::V1Syntax(what) => write!(f, "v1 header: {what}"),
            Invalid::V2VersionOrCommand(byte) => write!(f, "v2 header: bad version/command byte {byte:#04x}"),
            Invalid::V2Family(byte) => write!(f, "v2 header: unsupported family/protocol {byte:#04x}"),
            Invalid::V2Length(length) => write!(f, "v2 header: bad address length {length}"),
        }
    }
}

/// Parses the header at the start of `bytes`, which may hold more than the header (the client's
/// first bytes) or less (not all of it has arrived).
pub fn parse(bytes: &[u8]) -> Result<Parsed, Invalid> {
    if starts_like(bytes, V2_SIGNATURE) {
        parse_v2(bytes)
    } else if starts_like(bytes, V1_PREFIX) {
        parse_v1(bytes)
    } else {
        Err(Invalid::NoSignature)
    }
}

/// Whether `bytes` and `prefix` agree as far as both go (so an empty input agrees with all).
fn starts_like(bytes: &[u8], prefix: &[u8]) -> bool {
    let n = bytes.len().min(prefix.len());
    bytes[..n] == prefix[..n]
}

fn parse_v1(bytes: &[u8]) -> Result<Parsed, Invalid> {
    let window = &bytes[..bytes.len().min(MAX_V1)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if bytes.len() >= MAX_V1 { Err(Invalid::V1TooLong) } else { Ok(Parsed::Incomplete) };
    };
    let line = window[..lf].strip_suffix(b"\r").ok_or(Invalid::V1Syntax("line ends in LF without CR"))?;
    let line = std::str::from_utf8(line).map_err(|_| Invalid::V1Syntax("not ASCII"))?;
    let fields: Vec<&str> = line.split(' ').collect();
    let addresses = match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Addresses::Local,
        ["PROXY", family @ ("TCP4" | "TCP6"), source, destination, source_port, destination_port] => {
            let v6 = *family == "TCP6";
            Addresses::Proxied {
                source: SocketAddr::new(v1_ip(source, v6)?, v1_port(source_port)?),
                destination: SocketAddr::new(v1_ip(destination, v6)?, v1_port(destination_port)?),
            }
        }
        ["PROXY", "TCP4" | "TCP6", ..] => return Err(Invalid::V1Syntax("expected 4 fields after the family")),
        _ => return Err(Invalid::V1Syntax("family is not TCP4, TCP6 or UNKNOWN")),
    };
    Ok(Parsed::Header { addresses, length: lf + 1 })
}

fn v1_ip(text: &str, v6: bool) -> Result<IpAddr, Invalid> {
    let ip = if v6 { text.parse::<Ipv6Addr>().map(IpAddr::V6) } else { text.parse::<Ipv4Addr>().map(IpAddr::V4) };
    ip.map_err(|_| Invalid::V1Syntax(if v6 { "bad IPv6 address" } else { "bad IPv4 address" }))
}

fn v1_port(text: &str) -> Result<u16, Invalid> {
    // `u16::from_str` takes a leading '+', which the grammar does not.
    let digits = !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten().ok_or(Invalid::V1Syntax("bad port"))
}

fn parse_v2(bytes: &[u8]) -> Result<Parsed, Invalid> {
    if bytes.len() < V2_FIXED {
        return Ok(Parsed::Incomplete);
    }
    let (version_command, family) = (bytes[12], bytes[13]);
    let body_length = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    let local = match version_command {
        0x20 => true,
        0x21 => false,
        other => return Err(Invalid::V2VersionOrCommand(other)),
    };
    let needed = match family {
        0x11 => 12, // TCP over IPv4
        0x21 => 36, // TCP over IPv6
        // UNSPEC, and UNIX stream sockets: no IP to speak of.
        0x00 | 0x31 => 0,
        other => return Err(Invalid::V2Family(other)),
    };
    if body_length < needed || body_length > MAX_V2_BODY {
        return Err(Invalid::V2Length(body_length));
    }
    let length = V2_FIXED + body_length;
    let Some(body) = bytes.get(V2_FIXED..length) else {
        return Ok(Parsed::Incomplete);
    };
    // LOCAL carries addresses of no meaning (or none): the connection's own endpoints stand.
    let addresses = match family {
        _ if local => Addresses::Local,
        0x11 => {
            let ip = |at: usize| IpAddr::V4(Ipv4Addr::new(body[at], body[at + 1], body[at + 2], body[at + 3]));
            Addresses::Proxied {
                source: SocketAddr::new(ip(0), be16(body, 8)),
                destination: SocketAddr::new(ip(4), be16(body, 10)),
            }
        }
        0x21 => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&body[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            Addresses::Proxied {
                source: SocketAddr::new(ip(0), be16(body, 32)),
                destination: SocketAddr::new(ip(16), be16(body, 34)),
            }
        }
        _ => Addresses::Local,
    };
    Ok(Parsed::Header { addresses, length })
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxied(source: &str, destination: &str) -> Addresses {
        Addresses::Proxied { source: source.parse().unwrap(), destination: destination.parse().unwrap() }
    }

    fn header(addresses: Addresses, length: usize) -> Result<Parsed, Invalid> {
        Ok(Parsed::Header { addresses, length })
    }

    /// A v2 header as HAProxy's `send-proxy-v2` writes it.
    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut bytes = V2_SIGNATURE.to_vec();
        bytes.extend([command, family]);
        bytes.extend((body.len() as u16).to_be_bytes());
        bytes.extend(body);
        bytes
    }

    fn tcp4_body() -> Vec<u8> {
        let mut body = vec![203, 0, 113, 9, 192, 0, 2, 1];
        body.extend(51234u16.to_be_bytes());
        body.extend(21u16.to_be_bytes());
        body
    }

    #[test]
    fn v1_tcp4_and_tcp6() {
        let line = b"PROXY TCP4 203.0.113.9 192.0.2.1 51234 21\r\n";
        assert_eq!(parse(line), header(proxied("203.0.113.9:51234", "192.0.2.1:21"), line.len()));
        let line = b"PROXY TCP6 2001:db8::9 2001:db8::1 51234 2121\r\n";
        assert_eq!(parse(line), header(proxied("[2001:db8::9]:51234", "[2001:db8::1]:2121"), line.len()));
    }

    #[test]
    fn v1_unknown_keeps_the_connections_endpoints() {
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), header(Addresses::Local, 15));
        let line = b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
        assert_eq!(parse(line), header(Addresses::Local, line.len()));
        let peer = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(Addresses::Local.client(peer), peer);
        assert_eq!(proxied("10.0.0.1:1", "10.0.0.2:2").client(peer), "10.0.0.1:1".parse().unwrap());
    }

    #[test]
    fn bytes_after_the_header_are_not_part_of_it() {
        let line = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nUSER anonymous\r\n";
        assert_eq!(parse(line), header(proxied("1.2.3.4:1", "5.6.7.8:2"), 32));
        let mut bytes = v2(0x21, 0x11, &tcp4_body());
        bytes.extend(b"USER anonymous\r\n");
        assert_eq!(parse(&bytes), header(proxied("203.0.113.9:51234", "192.0.2.1:21"), 28));
    }

    #[test]
    fn every_prefix_of_a_header_is_incomplete() {
        let v1 = b"PROXY TCP4 203.0.113.9 192.0.2.1 51234 21\r\n".to_vec();
        let v2 = v2(0x21, 0x21, &[7u8; 36]);
        for whole in [v1, v2] {
            for end in 0..whole.len() {
                assert_eq!(parse(&whole[..end]), Ok(Parsed::Incomplete), "{:?}", &whole[..end]);
            }
            assert!(matches!(parse(&whole), Ok(Parsed::Header { length, .. }) if length == whole.len()));
        }
    }

    #[test]
    fn v1_is_bounded_to_107_bytes() {
        let longest = format!("PROXY UNKNOWN {}\r\n", "x".repeat(MAX_V1 - 16));
        assert_eq!(longest.len(), MAX_V1);
        assert_eq!(parse(longest.as_bytes()), header(Addresses::Local, MAX_V1));
        let too_long = format!("PROXY UNKNOWN {}\r\n", "x".repeat(MAX_V1 - 15));
        assert_eq!(parse(too_long.as_bytes()), Err(Invalid::V1TooLong));
        assert_eq!(parse(&too_long.as_bytes()[..MAX_V1 - 1]), Ok(Parsed::Incomplete));
    }

    #[test]
    fn v1_grammar_errors() {
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"[..],  // LF without CR
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",       // a field missing
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",   // one too many
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",    // two spaces
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",    // trailing space
            b"PROXY TCP4 ::1 ::1 1 2\r\n",             // IPv6 under TCP4
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",     // IPv4 under TCP6
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", // port out of range
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",    // sign
            b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8  2\r\n", // empty port
            b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", // not TCP
            b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", // case matters
            b"PROXY \xff\r\n",                     // not ASCII
            b"PROXY \r\n",
        ] {
            assert!(matches!(parse(bad), Err(Invalid::V1Syntax(_))), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn anything_else_is_refused_at_its_first_wrong_byte() {
        for bad in [&b"USER anonymous\r\n"[..], b"Q", b"PROXX", b"proxy ", b"\r\n\r\n\0\r\nQUIT\r", b"\x16\x03\x01"] {
            assert_eq!(parse(bad), Err(Invalid::NoSignature), "{bad:?}");
        }
    }

    #[test]
    fn v2_proxy_tcp4_and_tcp6() {
        let bytes = v2(0x21, 0x11, &tcp4_body());
        assert_eq!(parse(&bytes), header(proxied("203.0.113.9:51234", "192.0.2.1:21"), 28));

        let mut body = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9).octets().to_vec();
        body.extend(Ipv6Addr::LOCALHOST.octets());
        body.extend(40000u16.to_be_bytes());
        body.extend(2121u16.to_be_bytes());
        let bytes = v2(0x21, 0x21, &body);
        assert_eq!(parse(&bytes), header(proxied("[2001:db8::9]:40000", "[::1]:2121"), 52));
    }

    #[test]
    fn v2_tlvs_after_the_addresses_are_skipped() {
        let mut body = tcp4_body();
        body.extend([0x04, 0x00, 0x03, b'a', b'b', b'c']); // PP2_TYPE_NOOP, 3 bytes
        let mut bytes = v2(0x21, 0x11, &body);
        bytes.extend(b"rest");
        assert_eq!(parse(&bytes), header(proxied("203.0.113.9:51234", "192.0.2.1:21"), 34));
    }

    #[test]
    fn v2_local_and_unspec_keep_the_connections_endpoints() {
        assert_eq!(parse(&v2(0x20, 0x00, &[])), header(Addresses::Local, 16));
        assert_eq!(parse(&v2(0x20, 0x11, &tcp4_body())), header(Addresses::Local, 28));
        assert_eq!(parse(&v2(0x21, 0x00, &[])), header(Addresses::Local, 16));
        assert_eq!(parse(&v2(0x21, 0x31, &[0u8; 216])), header(Addresses::Local, 232));
    }

    #[test]
    fn v2_errors() {
        assert_eq!(parse(&v2(0x11, 0x11, &tcp4_body())), Err(Invalid::V2VersionOrCommand(0x11)));
        assert_eq!(parse(&v2(0x22, 0x11, &tcp4_body())), Err(Invalid::V2VersionOrCommand(0x22)));
        assert_eq!(parse(&v2(0x21, 0x12, &tcp4_body())), Err(Invalid::V2Family(0x12)), "UDP");
        assert_eq!(parse(&v2(0x21, 0x10, &tcp4_body())), Err(Invalid::V2Family(0x10)));
        assert_eq!(parse(&v2(0x21, 0x11, &[0u8; 11])), Err(Invalid::V2Length(11)));
        assert_eq!(parse(&v2(0x21, 0x21, &[0u8; 12])), Err(Invalid::V2Length(12)));
        // A length beyond the bound is refused from the fixed part alone, before the body arrives.
        let mut big = v2(0x21, 0x11, &[]);
        big[14..16].copy_from_slice(&((MAX_V2_BODY + 1) as u16).to_be_bytes());
        assert_eq!(parse(&big), Err(Invalid::V2Length(MAX_V2_BODY + 1)));
        let largest = v2(0x21, 0x11, &[0u8; MAX_V2_BODY]);
        assert_eq!(largest.len(), MAX_HEADER);
        assert!(matches!(parse(&largest), Ok(Parsed::Header { length: MAX_HEADER, .. })));
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(Invalid::NoSignature.to_string(), "no PROXY protocol signature");
        assert_eq!(Invalid::V2Family(0x12).to_string(), "v2 header: unsupported family/protocol 0x12");
    }
}
