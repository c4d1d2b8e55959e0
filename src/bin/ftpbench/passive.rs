//! The port out of a `227` (PASV) or `229` (EPSV) reply. Only the port: the client connects to
//! the control connection's peer, never to an address a server advertises.

/// `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)`. RFC 959 fixes no wording around the numbers
/// (some servers drop the parentheses), so this takes the first run of digits and commas.
pub fn pasv_port(text: &str) -> Option<u16> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let numbers = &text[start..];
    let end = numbers.find(|c: char| !c.is_ascii_digit() && c != ',').unwrap_or(numbers.len());
    let fields: Vec<u8> = numbers[..end].split(',').map(str::parse).collect::<Result<_, _>>().ok()?;
    match fields[..] {
        [_, _, _, _, high, low] => Some((u16::from(high) << 8) | u16::from(low)).filter(|&port| port != 0),
        _ => None,
    }
}

/// `229 Entering Extended Passive Mode (|||port|)`; the delimiter is whatever character follows
/// the parenthesis (RFC 2428 3).
pub fn epsv_port(text: &str) -> Option<u16> {
    let inner = &text[text.find('(')? + 1..];
    let delimiter = inner.chars().next()?;
    let fields: Vec<&str> = inner.split(delimiter).collect();
    match fields[..] {
        [_, "", "", port, ..] => port.parse().ok().filter(|&port| port != 0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasv_replies() {
        assert_eq!(pasv_port("Entering Passive Mode (127,0,0,1,156,64)."), Some(156 * 256 + 64));
        assert_eq!(pasv_port("Entering Passive Mode 127,0,0,1,4,1"), Some(1025));
        assert_eq!(pasv_port("=10,1,2,3,0,21"), Some(21));
        for bad in
            ["Entering Passive Mode", "(127,0,0,1,156)", "(127,0,0,1,300,1)", "(127,0,0,1,0,0)", "(1,2,3,4,5,6,7)"]
        {
            assert_eq!(pasv_port(bad), None, "{bad}");
        }
    }

    #[test]
    fn epsv_replies() {
        assert_eq!(epsv_port("Entering Extended Passive Mode (|||6446|)"), Some(6446));
        assert_eq!(epsv_port("ok (!!!21!)"), Some(21));
        for bad in ["no parenthesis", "(|||x|)", "(||1|2|)", "(|||70000|)", "(|||0|)", "("] {
            assert_eq!(epsv_port(bad), None, "{bad}");
        }
    }
}
