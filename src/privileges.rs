//! Privileges. Started as root (to bind port 21), the server switches to an unprivileged account
//! right after binding, before it accepts a client: from then on every file is opened with that
//! account's rights, and a flaw anywhere in the server is a flaw of an ordinary user. Serving as
//! root without `--run-as` works but is warned about at start.

use log::{info, warn};
use std::ffi::{CStr, CString};
use std::io;

/// Switches the whole process to `name`'s user and group, dropping supplementary groups.
/// Already running as that user is fine; any other non-root start is an error, because the
/// switch the admin asked for cannot happen.
pub fn run_as(name: &str) -> io::Result<()> {
    let (uid, gid) = lookup(name)?;
    // SAFETY: these calls take plain integers and change only this process's credentials.
    unsafe {
        if libc::geteuid() == uid && libc::getegid() == gid {
            return Ok(());
        }
        if libc::geteuid() != 0 {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, format!("--run-as {name} needs root")));
        }
        // Order matters: groups and gid while still root, uid last.
        check(libc::setgroups(1, &gid))?;
        check(libc::setgid(gid))?;
        check(libc::setuid(uid))?;
        if libc::setuid(0) == 0 {
            return Err(io::Error::other("could become root again after --run-as; refusing to serve"));
        }
    }
    info!("running as {name} (uid {uid}, gid {gid})");
    Ok(())
}

/// Warns when the server would serve files with root's rights.
pub fn warn_if_root() {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } == 0 {
        warn!("running as root: clients read and write files with root's rights; use --run-as USER");
    }
}

/// Whether `--run-as NAME` would find its account (for `check-config`).
pub fn account_exists(name: &str) -> io::Result<()> {
    lookup(name).map(drop)
}

fn lookup(name: &str) -> io::Result<(libc::uid_t, libc::gid_t)> {
    let c_name = CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad user name"))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: `passwd` is plain old data that getpwnam_r fills in; its strings point into `buf`,
    // which outlives every use of them here.
    unsafe {
        let mut entry: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(c_name.as_ptr(), &mut entry, buf.as_mut_ptr(), buf.len(), &mut found);
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if found.is_null() {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("no such user: {name}")));
        }
        debug_assert_eq!(CStr::from_ptr(entry.pw_name).to_bytes(), name.as_bytes());
        Ok((entry.pw_uid, entry.pw_gid))
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_accounts() {
        assert_eq!(lookup("root").unwrap(), (0, 0));
        assert_eq!(lookup("no-such-user-mioftpd").unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
