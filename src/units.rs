//! Quantities as admins write them: byte counts and rates with binary suffixes (`512k`, `10M`).
//! Parsing only.

/// A byte count with an optional binary suffix: `4096`, `64K`, `256MiB`, `1G` (all powers of
/// 1024, case-insensitive).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| format!("expected a size such as 256MiB, got {text:?}"))?;
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return Err(format!("unknown size suffix {suffix:?} (use K, M, G, KiB, MiB or GiB)")),
    };
    number.checked_mul(1 << shift).ok_or_else(|| format!("size too large: {text:?}"))
}

/// A bandwidth limit in bytes per second, written like a size (`512k` is 512 KiB/s); zero is
/// refused, because "no limit" is written by leaving the limit out.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    match parse_size(text)? {
        0 => Err(format!("a rate must be above zero, got {text:?}")),
        rate => Ok(rate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        for bad in ["", "MiB", "1TB", "-1", "1.5M", "99999999999999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("10M"), Ok(10 << 20));
        assert!(parse_rate("0").unwrap_err().contains("above zero"));
        assert!(parse_rate("0k").is_err());
    }
}
