//! `proxy_protocol::parse`, the PROXY header a load balancer sends, on arbitrary bytes.
//!
//! Checks: nothing panics; a header is never longer than the input nor than `MAX_HEADER` (the
//! most the server peeks), and a v1 header never longer than `MAX_V1`; the verdict does not
//! depend on how the bytes arrived: every proper prefix of a header is `Incomplete`, the header
//! alone parses to the same header, bytes after it change nothing, and an error stays an error
//! whatever follows; `Incomplete` only below `MAX_HEADER` bytes, so a peek of that size always
//! decides.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mioftpd::proxy_protocol::{MAX_HEADER, MAX_V1, Parsed, parse};

fuzz_target!(|bytes: &[u8]| {
    let verdict = parse(bytes);
    match &verdict {
        Ok(Parsed::Incomplete) => assert!(bytes.len() < MAX_HEADER, "undecided after {} bytes", bytes.len()),
        Ok(Parsed::Header { length, .. }) => {
            let length = *length;
            assert!(length <= bytes.len() && length <= MAX_HEADER, "length {length} of {}", bytes.len());
            if bytes.starts_with(b"PROXY ") {
                assert!(length <= MAX_V1, "v1 header of {length} bytes");
            }
            assert_eq!(parse(&bytes[..length]), verdict, "the header alone");
            for end in 0..length {
                assert_eq!(parse(&bytes[..end]), Ok(Parsed::Incomplete), "prefix of {end} bytes");
            }
        }
        Err(_) => {
            let mut longer = bytes.to_vec();
            longer.extend_from_slice(b"\r\n\r\n");
            assert!(parse(&longer).is_err(), "an error undone by more bytes");
        }
    }
});
