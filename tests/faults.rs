//! Faults from the world outside the protocol, produced for real: an upload onto a filesystem
//! that is genuinely full (a 1 MiB tmpfs, no mocks) gets 452, leaves nothing behind, and the
//! session carries on.
//!
//! The tmpfs is mounted directly when the test runs as root; otherwise the server binary runs
//! inside `unshare --user --map-root-user --mount`, which mounts it in a namespace of its own
//! (the test then looks at the files through `/proc/PID/root`). Where neither works the test
//! prints `SKIP: <reason>`, which under `CI=true` is a failure. `MIOFTPD_FAULTS_VIA=unshare`
//! forces the second way even as root.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};

const KIB: usize = 1024;

#[test]
fn an_upload_onto_a_full_disk_gets_452_leaves_nothing_and_the_session_goes_on() {
    let Some(disk) = SmallDisk::start("disk-full", "1m") else { return };
    let mut c = Raw::connect(disk.addr);
    c.login("alice", "pw");

    let old = random_bytes(10 * KIB, 1);
    c.upload("STOR keep.bin", &old);
    c.upload("STOR filler.bin", &random_bytes(700 * KIB, 2));
    let free = disk.free_bytes();
    assert!(free < 600 * KIB as u64, "the filesystem should be nearly full now, {free} bytes free");

    // A new file that does not fit: 452, and no trace of it.
    let big = random_bytes(600 * KIB, 3);
    assert_eq!(upload_until_refused(&mut c, "STOR new.bin", &big), (452, "Insufficient storage space.".into()));
    assert_eq!(disk.names(), ["filler.bin", "keep.bin"], "no partial file, no temporary file");

    // Replacing an existing file that does not fit: 452, and the old file is intact.
    assert_eq!(upload_until_refused(&mut c, "STOR keep.bin", &big).0, 452);
    assert!(disk.read("keep.bin") == old, "a failed upload must not damage the file it was replacing");
    assert_eq!(disk.names(), ["filler.bin", "keep.bin"]);

    // Not one block left: even a one-byte upload is refused, without a trace.
    disk.fill_up("stuffing");
    assert_eq!(disk.free_bytes(), 0);
    assert_eq!(upload_until_refused(&mut c, "STOR tiny.bin", b"x").0, 452);
    assert_eq!(disk.names(), ["filler.bin", "keep.bin", "stuffing"]);
    std::fs::remove_file(disk.view.join("stuffing")).unwrap();

    // The session goes on, and so does the server.
    assert_eq!(c.expect_cmd("PWD", 257), "\"/\" is the current directory.");
    c.expect_cmd("NOOP", 200);
    let listing = String::from_utf8(c.download("NLST")).unwrap();
    let mut listed: Vec<&str> = listing.lines().collect();
    listed.sort();
    assert_eq!(listed, ["filler.bin", "keep.bin"]);
    assert!(c.download("RETR keep.bin") == old);
    let mut other = Raw::connect(disk.addr);
    other.login("alice", "pw");
    other.expect_cmd("QUIT", 221);

    // Once there is room again, uploads succeed: a small one, then the one refused before.
    c.expect_cmd("DELE filler.bin", 250);
    let small = random_bytes(100 * KIB, 4);
    c.upload("STOR small.bin", &small);
    assert!(disk.read("small.bin") == small);
    c.upload("STOR new.bin", &big);
    assert!(disk.read("new.bin") == big);
    assert!(c.download("RETR new.bin") == big);
    assert_eq!(disk.names(), ["keep.bin", "new.bin", "small.bin"]);
    c.expect_cmd("QUIT", 221);
    disk.assert_no_panic();
}

/// Uploads `bytes` with `cmd`, expecting the server to give up partway: it stops reading and
/// closes the data connection, so our writes may fail (that is the point). Returns the final
/// reply after the 150.
fn upload_until_refused(c: &mut Raw, cmd: &str, bytes: &[u8]) -> (u16, String) {
    let mut data = c.epsv();
    c.expect_cmd(cmd, 150);
    let _ = data.write_all(bytes); // EPIPE / ECONNRESET once the server has closed its end
    drop(data);
    c.reply()
}

/// The server binary serving a freshly mounted tmpfs of a few pages, with user `alice`
/// (password `pw`, read-write). Dropping it kills the server (by its PID) and unmounts.
struct SmallDisk {
    addr: SocketAddr,
    server: Child,
    stderr: BufReader<ChildStderr>,
    /// Where this process sees the tmpfs: the mount point, or `/proc/PID/root/<mount point>`
    /// when the mount lives in the server's own namespace.
    view: PathBuf,
    /// Set when we mounted it ourselves and must unmount it.
    mounted: Option<PathBuf>,
    // Dropped last: the mount point and the users file.
    _dirs: (TempRoot, TempRoot),
}

impl SmallDisk {
    /// `None` (after printing `SKIP: …`) when no way to mount a tmpfs works here.
    fn start(label: &str, size: &str) -> Option<SmallDisk> {
        let mount_point = TempRoot::new(label);
        let users = TempRoot::new(&format!("{label}-users"));
        let hash = mioftpd::auth::hash_password("pw").unwrap();
        std::fs::write(users.join("users"), format!("alice:{hash}:rw\n")).unwrap();
        let dir = mount_point.path.clone();
        let users_file = users.join("users");
        let server_args = |root: &Path| {
            let args = ["--listen", "127.0.0.1:0", "--root", root.to_str().unwrap()];
            let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            args.extend(["--users".into(), users_file.to_str().unwrap().into()]);
            args
        };

        let force_unshare = std::env::var("MIOFTPD_FAULTS_VIA").as_deref() == Ok("unshare");
        let mut reasons = Vec::new();
        if unsafe { libc::geteuid() } == 0 && !force_unshare {
            match mount_tmpfs(&dir, size) {
                Ok(()) => {
                    let mut server = Command::new(env!("CARGO_BIN_EXE_mioftpd"));
                    server.args(server_args(&dir));
                    return match spawn(&mut server) {
                        Ok((server, addr, stderr)) => Some(SmallDisk {
                            addr,
                            server,
                            stderr,
                            view: dir.clone(),
                            mounted: Some(dir),
                            _dirs: (mount_point, users),
                        }),
                        Err(e) => {
                            unmount(&dir);
                            panic!("the server did not start on the tmpfs: {e}");
                        }
                    };
                }
                Err(e) => reasons.push(format!("mount as root: {e}")),
            }
        } else if !force_unshare {
            reasons.push("not root".to_string());
        }

        // sh's $0 is the mount point, $1 the size, "$@" after `shift` the server and its args.
        let script = r#"d="$0"; s="$1"; shift; mount -t tmpfs -o "size=$s" tmpfs "$d" && exec "$@""#;
        let mut command = Command::new("unshare");
        command.args(["--user", "--map-root-user", "--mount", "sh", "-c", script]);
        command.arg(&dir).arg(size).arg(env!("CARGO_BIN_EXE_mioftpd")).args(server_args(&dir));
        match spawn(&mut command) {
            Ok((server, addr, stderr)) => {
                // `unshare` and `sh` exec in turn, so the child's PID is the server's.
                let view = PathBuf::from(format!("/proc/{}/root", server.id())).join(dir.strip_prefix("/").unwrap());
                let disk = SmallDisk { addr, server, stderr, view, mounted: None, _dirs: (mount_point, users) };
                Some(disk)
            }
            Err(e) => {
                reasons.push(format!("unshare: {e}"));
                let reason = format!("cannot mount a small tmpfs ({})", reasons.join("; "));
                assert!(std::env::var("CI").as_deref() != Ok("true"), "required under CI=true: {reason}");
                eprintln!("SKIP: {reason}");
                None
            }
        }
    }

    /// Free bytes on the tmpfs, as the kernel counts them; also checks it is a tmpfs at all.
    fn free_bytes(&self) -> u64 {
        let path = std::ffi::CString::new(self.view.to_str().unwrap()).unwrap();
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statfs(path.as_ptr(), &mut st) }, 0, "statfs {}", self.view.display());
        assert_eq!(st.f_type, libc::TMPFS_MAGIC, "{} is not the tmpfs", self.view.display());
        st.f_bavail * st.f_bsize as u64
    }

    /// Every name in the served directory, dot files included, sorted.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.view)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Writes a file directly (not through the server) until the filesystem is full.
    fn fill_up(&self, name: &str) {
        let mut file = std::fs::File::create(self.view.join(name)).unwrap();
        let chunk = vec![0x55u8; 64 * KIB];
        let err = loop {
            if let Err(e) = file.write_all(&chunk) {
                break e;
            }
        };
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "filling the tmpfs: {err}");
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.view.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }

    /// Stops the server and checks that it never panicked.
    fn assert_no_panic(mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let mut log = String::new();
        let _ = self.stderr.read_to_string(&mut log);
        assert!(!log.contains("panicked"), "server stderr:\n{log}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = self.server.kill(); // this PID only
        let _ = self.server.wait();
        if let Some(dir) = self.mounted.take() {
            unmount(&dir);
        }
    }
}

fn mount_tmpfs(dir: &Path, size: &str) -> Result<(), String> {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output()
        .map_err(|e| format!("run mount: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).trim().to_string()) }
}

fn unmount(dir: &Path) {
    let ok = Command::new("umount").arg(dir).status().is_ok_and(|s| s.success());
    if !ok {
        let _ = Command::new("umount").arg("-l").arg(dir).status();
    }
}

/// Starts `command` (the server, possibly behind `unshare`) and waits for its "serving … on"
/// line. An `Err` carries what it printed if it exited first.
fn spawn(command: &mut Command) -> Result<(Child, SocketAddr, BufReader<ChildStderr>), String> {
    let mut child = command
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {:?}: {e}", command.get_program()))?;
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            return Err(format!("exited ({status}) before listening: {}", said.trim()));
        }
        if let Some(addr) = line.split(" on ").nth(1).and_then(|rest| rest.split_whitespace().next()) {
            match addr.parse() {
                Ok(addr) => return Ok((child, addr, stderr)),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("listen line {line:?}: {e}"));
                }
            }
        }
        said.push_str(&line);
    }
}
