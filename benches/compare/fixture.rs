//! What the servers serve and who logs in: a workspace on tmpfs (so disk speed is not measured)
//! holding the served directory and the servers' generated configuration, the benchmark files,
//! and the account. Each piece is a guard that undoes itself on drop.
//!
//! Layout: `/dev/shm/mioftpd-bench-PID/` with `root/` (served as `/`: `bench-1g.bin`,
//! `bench-4k.bin`, uploads) and `etc/` (users files, configs; never served).

use crate::procs::run_tool;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The one account every server is given.
pub const USER: &str = "ftpbench";
/// The pattern file is written in blocks of this size.
const BLOCK: usize = 1 << 20;

pub struct Workspace {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub etc: PathBuf,
}

impl Workspace {
    pub fn create() -> Result<Workspace, String> {
        let dir = PathBuf::from(format!("/dev/shm/mioftpd-bench-{}", std::process::id()));
        let (root, etc) = (dir.join("root"), dir.join("etc"));
        // A leftover of an earlier run with the same pid holds nothing worth keeping.
        let _ = fs::remove_dir_all(&dir);
        for path in [&dir, &root, &etc] {
            fs::create_dir(path).map_err(|e| format!("create {}: {e}", path.display()))?;
        }
        // etc/ holds plaintext passwords for pyftpdlib and unftp: only this user may read it.
        fs::set_permissions(&etc, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("chmod {}: {e}", etc.display()))?;
        Ok(Workspace { dir, root, etc })
    }

    /// Writes `name` in the served directory: `size` bytes of one random 1 MiB block, repeated
    /// with the block number stamped on each copy (random, so nothing can compress it; a
    /// repeated block, so 1 GiB takes a second to write).
    pub fn write_file(&self, name: &str, size: u64) -> Result<(), String> {
        let path = self.root.join(name);
        let mut block = vec![0u8; BLOCK];
        getrandom::fill(&mut block).map_err(|e| format!("randomness for {name}: {e}"))?;
        let mut write = || -> io::Result<()> {
            let mut file = File::create(&path)?;
            let mut left = size;
            let mut index = 0u64;
            while left > 0 {
                block[..8].copy_from_slice(&index.to_le_bytes());
                let len = left.min(BLOCK as u64) as usize;
                file.write_all(&block[..len])?;
                left -= len as u64;
                index += 1;
            }
            file.sync_all()
        };
        write().map_err(|e| format!("write {}: {e}", path.display()))
    }

    /// Gives the served directory and everything in it to `uid:gid`, so that servers that switch
    /// to the account (vsftpd, pure-ftpd) can write there too.
    pub fn give_to(&self, uid: u32, gid: u32) -> Result<(), String> {
        let entries = fs::read_dir(&self.root).map_err(|e| format!("{}: {e}", self.root.display()))?;
        let mut paths = vec![self.root.clone()];
        paths.extend(entries.flatten().map(|entry| entry.path()));
        for path in paths {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", path.display()))?;
        }
        Ok(())
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("compare: warning: cannot remove {}: {e}", self.dir.display());
        }
    }
}

/// The `-tls` servers' certificate: self-signed, made for this run (ftpbench `--tls` does not
/// verify it).
pub struct Certificate {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// What kind of key, for the notes.
    pub kind: &'static str,
}

impl Certificate {
    /// Writes `cert.pem` and `key.pem` into `dir` (the workspace's `etc/`, readable by root only).
    pub fn create(dir: &Path) -> Result<Certificate, String> {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .map_err(|e| format!("cannot make a certificate: {e}"))?;
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        fs::write(&cert, made.cert.pem()).map_err(|e| format!("write {}: {e}", cert.display()))?;
        fs::write(&key, made.signing_key.serialize_pem()).map_err(|e| format!("write {}: {e}", key.display()))?;
        Ok(Certificate { cert, key, kind: "self-signed ECDSA P-256 certificate" })
    }
}

/// A random password of letters and digits, new for every run and never printed.
pub fn random_password() -> Result<String, String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| format!("randomness for the password: {e}"))?;
    Ok(bytes.iter().map(|&b| ALPHABET[b as usize % ALPHABET.len()] as char).collect())
}

/// The system account that vsftpd and pure-ftpd log in (they authenticate against
/// /etc/shadow): created if missing and deleted again at the end, or, if it already existed,
/// only pointed at this run's directory with this run's password.
pub struct SystemUser {
    pub uid: u32,
    pub gid: u32,
    created: bool,
}

impl SystemUser {
    /// Requires root. `home` becomes the account's home: pure-ftpd's chroot (`-A`).
    pub fn ensure(home: &Path, password: &str) -> Result<SystemUser, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("needs root to create the system user ftpbench".to_string());
        }
        let home = home.to_str().ok_or("the workspace path is not UTF-8")?;
        let created = lookup(USER).is_none();
        if created {
            run_tool("useradd", &["-M", "-d", home, "-s", "/bin/bash", "-c", "mioftpd benchmark", USER], None)?;
        } else {
            run_tool("usermod", &["-d", home, "-s", "/bin/bash", USER], None)?;
        }
        // From here on, a failure still deletes an account created above.
        let mut user = SystemUser { uid: 0, gid: 0, created };
        run_tool("chpasswd", &["-c", "SHA512"], Some(&format!("{USER}:{password}\n")))?;
        (user.uid, user.gid) = lookup(USER).ok_or("useradd succeeded but the user is not there")?;
        Ok(user)
    }

    /// Why vsftpd's PAM stack (Debian: pam_listfile on /etc/ftpusers, pam_shells) would refuse
    /// the account, if it would.
    pub fn pam_obstacle() -> Option<String> {
        let listed = fs::read_to_string("/etc/ftpusers").unwrap_or_default();
        if listed.lines().any(|line| line.trim() == USER) {
            return Some(format!("{USER} is listed in /etc/ftpusers (denied by pam_listfile)"));
        }
        let shells = fs::read_to_string("/etc/shells").unwrap_or_default();
        if !shells.lines().any(|line| line.trim() == "/bin/bash") {
            return Some("/bin/bash is not in /etc/shells (denied by pam_shells)".to_string());
        }
        None
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        if self.created
            && let Err(e) = run_tool("userdel", &[USER], None)
        {
            eprintln!("compare: warning: cannot delete the system user {USER}: {e}");
        }
    }
}

/// uid and gid of `name` from the passwd database.
fn lookup(name: &str) -> Option<(u32, u32)> {
    let name = CString::new(name).ok()?;
    // SAFETY: getpwnam reads a NUL-terminated string and returns a pointer into static storage
    // (or null), which is read at once, before any other passwd call.
    unsafe {
        let entry = libc::getpwnam(name.as_ptr());
        if entry.is_null() { None } else { Some(((*entry).pw_uid, (*entry).pw_gid)) }
    }
}
