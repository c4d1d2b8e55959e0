//! `VPath::join`, the lexical half of the virtual root, on arbitrary path arguments: the input is
//! split on LF into arguments, each joined both to the root and to a working directory that
//! follows the arguments the way `CWD` would.
//!
//! Checks, for every result `p`: it starts with `/`; has no empty, `.` or `..` component; has no
//! trailing slash unless it is the root; `is_root` agrees; joining it again (to the root or to any
//! other path) gives `p` back; `join` of a relative argument equals joining the concatenation
//! `cwd/arg` at the root; `parent()` of a non-root `p` is a prefix of it, and parent + `/` +
//! `file_name()` rebuilds `p`. `Root` (the real-filesystem resolver) is not touched.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mioftpd::fs::VPath;

fn check(p: &VPath) {
    let bytes = p.as_bytes();
    assert_eq!(bytes.first(), Some(&b'/'), "{p:?} is not absolute");
    assert_eq!(p.is_root(), bytes == b"/", "{p:?}: is_root disagrees");
    if p.is_root() {
        assert_eq!(p.file_name(), b"");
        assert_eq!(p.parent(), *p, "the root's parent is the root");
    } else {
        assert_ne!(bytes.last(), Some(&b'/'), "{p:?} has a trailing slash");
        for part in bytes[1..].split(|&b| b == b'/') {
            assert!(!matches!(part, b"" | b"." | b".."), "{p:?} has a {part:?} component");
        }
        let name = p.file_name();
        assert!(!name.is_empty() && !name.contains(&b'/'), "{p:?}: file name {name:?}");
        let parent = p.parent();
        assert!(bytes.starts_with(parent.as_bytes()), "{parent:?} is not a prefix of {p:?}");
        let mut rebuilt = parent.as_bytes().to_vec();
        if !parent.is_root() {
            rebuilt.push(b'/');
        }
        rebuilt.extend_from_slice(name);
        assert_eq!(rebuilt, bytes, "parent + file name does not rebuild {p:?}");
        assert!(parent.as_bytes().len() < bytes.len());
    }
    // Idempotent: an absolute result means the same from anywhere.
    assert_eq!(VPath::root().join(bytes), *p, "root.join({p:?}) moved");
    assert_eq!(p.join(bytes), *p, "{p:?}.join(itself) moved");
    assert_eq!(p.join(b""), *p);
    assert_eq!(p.join(b"."), *p);
}

fn join_checked(base: &VPath, arg: &[u8]) -> VPath {
    let joined = base.join(arg);
    check(&joined);
    assert!(joined.as_bytes().len() <= base.as_bytes().len() + arg.len() + 1);
    let spelled_out = if arg.first() == Some(&b'/') { arg.to_vec() } else { [base.as_bytes(), b"/", arg].concat() };
    assert_eq!(VPath::root().join(&spelled_out), joined, "{base:?}.join({arg:?}) is not lexical");
    joined
}

fuzz_target!(|data: &[u8]| {
    let root = VPath::root();
    check(&root);
    let mut cwd = root.clone();
    for arg in data.split(|&b| b == b'\n') {
        let from_root = join_checked(&root, arg);
        let from_cwd = join_checked(&cwd, arg);
        if arg.first() == Some(&b'/') {
            assert_eq!(from_root, from_cwd, "an absolute argument ignores the working directory");
        }
        // A `CDUP` between arguments, driven by the input: `..` is the parent.
        if arg.ends_with(b"\r") {
            assert_eq!(from_cwd.join(b".."), from_cwd.parent());
            cwd = from_cwd.parent();
        } else {
            cwd = from_cwd;
        }
    }
});
