//! Real FTP client programs against the real server: python3 ftplib, curl, tnftp, inetutils-ftp,
//! wget, lftp and ncftp. Each test starts its own server, drives one client through a scenario and
//! checks the bytes that ended up on either side and the client's exit status. `MATRIX` below
//! records which test backs which cell of the client matrix in README.md.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which client program is tested for which operation, and by which test in this file. The
/// client matrix in README.md is generated from this list (see
/// `readme_client_matrix_is_generated_from_these_tests`); a cell is ✓ only if the named test drives
/// that client through that operation and asserts on the result.
const MATRIX: &[(&str, &str, &str)] = &[
    ("tnftp (ftp)", "login", "tnftp_rw_user_put_mkdir_delete"),
    ("tnftp (ftp)", "list", "tnftp_login_ls_cd_get_bye"),
    ("tnftp (ftp)", "cd", "tnftp_login_ls_cd_get_bye"),
    ("tnftp (ftp)", "download", "tnftp_login_ls_cd_get_bye"),
    ("tnftp (ftp)", "download", "tnftp_mget_named_files_via_nlst"),
    ("tnftp (ftp)", "upload", "tnftp_rw_user_put_mkdir_delete"),
    ("tnftp (ftp)", "resume", "tnftp_reget_resumes_partial_download"),
    ("tnftp (ftp)", "active mode", "tnftp_active_mode_ls_get_put"),
    ("tnftp (ftp)", "quit", "tnftp_reget_resumes_partial_download"),
    ("inetutils ftp", "login", "inetutils_ftp_cd_reget_bye"),
    ("inetutils ftp", "list", "inetutils_ftp_passive_ls_get_put_bye"),
    ("inetutils ftp", "cd", "inetutils_ftp_cd_reget_bye"),
    ("inetutils ftp", "download", "inetutils_ftp_passive_ls_get_put_bye"),
    ("inetutils ftp", "upload", "inetutils_ftp_passive_ls_get_put_bye"),
    ("inetutils ftp", "resume", "inetutils_ftp_cd_reget_bye"),
    ("inetutils ftp", "active mode", "inetutils_ftp_active_ls_get_put_bye"),
    ("inetutils ftp", "quit", "inetutils_ftp_cd_reget_bye"),
    ("lftp", "login", "lftp_login_ls_cd_get_put_quit"),
    ("lftp", "list", "lftp_login_ls_cd_get_put_quit"),
    ("lftp", "cd", "lftp_login_ls_cd_get_put_quit"),
    ("lftp", "download", "lftp_login_ls_cd_get_put_quit"),
    ("lftp", "download", "lftp_pget_segmented_download"),
    ("lftp", "upload", "lftp_login_ls_cd_get_put_quit"),
    ("lftp", "resume", "lftp_get_continue_resumes_partial_download"),
    ("lftp", "active mode", "lftp_active_mode_ls_get_put"),
    ("lftp", "mirror", "lftp_mirror_downloads_tree"),
    ("lftp", "mirror", "lftp_reverse_mirror_uploads_tree"),
    ("lftp", "quit", "lftp_login_ls_cd_get_put_quit"),
    ("curl", "login", "curl_upload_as_rw_user"),
    ("curl", "list", "curl_list_and_nlst"),
    ("curl", "cd", "curl_resume_download_with_explicit_pasv"),
    ("curl", "download", "curl_download_passive_and_active"),
    ("curl", "upload", "curl_upload_as_rw_user"),
    ("curl", "resume", "curl_resume_download_with_explicit_pasv"),
    ("curl", "resume", "curl_resume_upload_as_rw_user"),
    ("curl", "active mode", "curl_download_passive_and_active"),
    ("curl", "quit", "curl_resume_download_with_explicit_pasv"),
    ("wget", "login", "wget_login_as_user"),
    ("wget", "list", "wget_directory_listing_after_cwd"),
    ("wget", "cd", "wget_directory_listing_after_cwd"),
    ("wget", "download", "wget_single_file"),
    ("wget", "resume", "wget_continue_resumes_partial_download"),
    ("wget", "active mode", "wget_active_mode"),
    ("wget", "mirror", "wget_recursive_mirror"),
    ("ncftp", "login", "ncftpput_uploads_as_rw_user"),
    ("ncftp", "list", "ncftpls_names_long_and_subdirectory"),
    ("ncftp", "cd", "ncftpls_names_long_and_subdirectory"),
    ("ncftp", "download", "ncftpget_downloads_file"),
    ("ncftp", "upload", "ncftpput_uploads_as_rw_user"),
    ("ncftp", "resume", "ncftpget_resumes_partial_download"),
    ("ncftp", "active mode", "ncftpget_active_mode"),
    ("ncftp", "mirror", "ncftpget_recursive_tree"),
    ("ncftp", "quit", "ncftpget_downloads_file"),
    ("Python ftplib", "login", "python_ftplib_users_write_and_permissions"),
    ("Python ftplib", "list", "python_ftplib_anonymous_browse_and_download"),
    ("Python ftplib", "cd", "python_ftplib_anonymous_browse_and_download"),
    ("Python ftplib", "download", "python_ftplib_anonymous_browse_and_download"),
    ("Python ftplib", "upload", "python_ftplib_users_write_and_permissions"),
    ("Python ftplib", "resume", "python_ftplib_every_command"),
    ("Python ftplib", "active mode", "python_ftplib_active_mode"),
    ("Python ftplib", "active mode", "python_ftplib_ipv6_epsv_and_eprt"),
    ("Python ftplib", "quit", "python_ftplib_every_command"),
];

/// The rows and columns of the README matrix, in order.
const MATRIX_CLIENTS: &[&str] = &["tnftp (ftp)", "inetutils ftp", "lftp", "curl", "wget", "ncftp", "Python ftplib"];
const MATRIX_OPERATIONS: &[&str] =
    &["login", "list", "cd", "download", "upload", "resume", "active mode", "mirror", "quit"];

const MIB: usize = 1024 * 1024;
const ALICE_PW: &str = "alice-pw";
const BOB_PW: &str = "bob-pw";

/// A server with a users file (alice rw, bob ro) and no anonymous access. The second value
/// holds the users file and must outlive the server.
fn users_server(label: &str) -> (TestServer, TempRoot) {
    users_server_with(label, |_| {})
}

/// `users_server` with a further change to the config (e.g. another listen address).
fn users_server_with(label: &str, adjust: impl FnOnce(&mut mioftpd::Config)) -> (TestServer, TempRoot) {
    let users = TempRoot::new(&format!("{label}-users"));
    let alice = mioftpd::auth::hash_password(ALICE_PW).unwrap();
    let bob = mioftpd::auth::hash_password(BOB_PW).unwrap();
    std::fs::write(users.join("users"), format!("alice:{alice}:rw\nbob:{bob}:ro\n")).unwrap();
    let server = TestServer::start_with(label, |cfg| {
        cfg.users = Some(users.join("users"));
        cfg.anonymous = false;
        adjust(cfg);
    });
    (server, users)
}

/// A fresh working directory for a client process.
fn workdir(label: &str) -> TempRoot {
    TempRoot::new(&format!("{label}-client"))
}

fn port_arg(server: &TestServer) -> String {
    server.port().to_string()
}

/// Asserts two byte strings are equal without dumping megabytes on failure.
#[track_caller]
fn assert_same(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        panic!("{what}: {} bytes, expected {}; first difference at byte {first}", got.len(), want.len());
    }
}

/// Whether a client's output shows the server answering 502 (command not implemented).
fn has_502(stdout: &str) -> bool {
    stdout.lines().any(|l| l.trim_start().starts_with("502"))
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();
    lines.sort();
    lines
}

/// Every entry under `dir` by relative path: `None` for a directory, the contents for a file.
fn snapshot(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut entries = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap_or_else(|e| panic!("read_dir {}: {e}", current.display())) {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
                entries.insert(rel, None);
            } else {
                entries.insert(rel, Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    entries
}

/// Asserts that two directory trees hold the same directories and byte-identical files.
#[track_caller]
fn assert_same_tree(got: &Path, want: &Path) {
    let (got_entries, want_entries) = (snapshot(got), snapshot(want));
    let names = |entries: &BTreeMap<String, Option<Vec<u8>>>| -> Vec<String> {
        entries.iter().map(|(name, bytes)| if bytes.is_some() { name.clone() } else { format!("{name}/") }).collect()
    };
    assert_eq!(names(&got_entries), names(&want_entries), "{} vs {}", got.display(), want.display());
    for (name, bytes) in &want_entries {
        if let (Some(want_bytes), Some(Some(got_bytes))) = (bytes, got_entries.get(name)) {
            assert_same(got_bytes, want_bytes, name);
        }
    }
}

/// A tree to mirror: nested directories, names with spaces, an empty file and an empty
/// directory, and one multi-MiB file.
fn write_tree(root: &TempRoot, base: &str) {
    root.write(&format!("{base}/top.txt"), b"top\n");
    root.write(&format!("{base}/with space.txt"), b"spaced out\n");
    root.write(&format!("{base}/sub/big.bin"), &random_bytes(3 * MIB + 5, 71));
    root.write(&format!("{base}/sub/deeper/empty"), b"");
    root.write(&format!("{base}/sub/deeper/two  spaces.bin"), &random_bytes(70_000, 72));
    std::fs::create_dir_all(root.join(&format!("{base}/empty dir"))).unwrap();
}

/// Whether a transcript has a line starting with `prefix`.
fn has_line(transcript: &str, prefix: &str) -> bool {
    transcript.lines().any(|l| l.trim_start().starts_with(prefix))
}

/// A relay for one control connection that records the commands the client sent, for a client
/// whose own transcript leaves some out (curl does not log the `QUIT` it sends on exit).
struct ControlTap {
    addr: std::net::SocketAddr,
    thread: std::thread::JoinHandle<Vec<u8>>,
}

impl ControlTap {
    fn start(server: std::net::SocketAddr) -> ControlTap {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            let (mut client, _) = listener.accept().unwrap();
            let mut upstream = std::net::TcpStream::connect(server).unwrap();
            client.set_read_timeout(Some(PATIENCE)).unwrap();
            upstream.set_read_timeout(Some(PATIENCE)).unwrap();
            let (mut from_server, mut to_client) = (upstream.try_clone().unwrap(), client.try_clone().unwrap());
            let replies = std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_server, &mut to_client);
                let _ = to_client.shutdown(std::net::Shutdown::Write);
            });
            let mut sent = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = client.read(&mut buf) {
                sent.extend_from_slice(&buf[..n]);
                if upstream.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = upstream.shutdown(std::net::Shutdown::Write);
            replies.join().unwrap();
            sent
        });
        ControlTap { addr, thread }
    }

    /// Waits for the connection to end; returns what the client sent.
    fn sent(self) -> String {
        String::from_utf8_lossy(&self.thread.join().unwrap()).into_owned()
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// python3 ftplib
// ---------------------------------------------------------------------------------------------

const PY_ANON: &str = r#"
import ftplib, hashlib, sys
port, served, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
f = ftplib.FTP()
f.connect('127.0.0.1', port, timeout=30)
f.login()
assert f.pwd() == '/', f.pwd()
f.cwd('sub')
assert f.pwd() == '/sub', f.pwd()
assert sorted(f.nlst()) == ['a.txt', 'b.txt'], f.nlst()
f.cwd('..')
assert f.pwd() == '/', f.pwd()
assert sorted(f.nlst('sub')) == ['sub/a.txt', 'sub/b.txt'], f.nlst('sub')
lines = []
f.retrlines('LIST', lines.append)
names = sorted(l.split(None, 8)[8] for l in lines)
assert names == ['big.bin', 'sub'], lines
assert all(l.split()[2:4] == ['ftp', 'ftp'] for l in lines), lines
assert [l[0] for l in sorted(lines, key=lambda l: l.split(None, 8)[8])] == ['-', 'd'], lines
h = hashlib.sha256()
with open(out, 'wb') as o:
    def chunk(b):
        h.update(b)
        o.write(b)
    f.retrbinary('RETR big.bin', chunk, blocksize=65536)
want = hashlib.sha256(open(served, 'rb').read()).hexdigest()
assert h.hexdigest() == want, (h.hexdigest(), want)
assert f.size('big.bin') == 5 * 1024 * 1024 + 17, f.size('big.bin')
f.quit()
print('ok')
"#;

#[test]
fn python_ftplib_anonymous_browse_and_download() {
    if !require("python3") {
        return;
    }
    let server = TestServer::start("py-anon");
    let content = random_bytes(5 * MIB + 17, 11);
    server.root.write("big.bin", &content);
    server.root.write("sub/a.txt", b"alpha\n");
    server.root.write("sub/b.txt", b"beta\n");
    let work = workdir("py-anon");
    let served = server.root.join("big.bin");
    let out = work.join("got.bin");
    let (ok, stdout, stderr) = run(
        "python3",
        &["-c", PY_ANON, &port_arg(&server), served.to_str().unwrap(), out.to_str().unwrap()],
        b"",
        &work.path,
    );
    assert!(ok && stdout.trim() == "ok", "python failed:\n{stdout}\n{stderr}");
    assert_same(&work.read("got.bin"), &content, "ftplib download");
    server.assert_no_open_slots();
}

const PY_USERS: &str = r#"
import ftplib, io, sys
port = int(sys.argv[1])
payload = bytes(range(256)) * 4096 + b'tail'

f = ftplib.FTP()
f.connect('127.0.0.1', port, timeout=30)
try:
    f.login('alice', 'wrong')
    raise SystemExit('wrong password accepted')
except ftplib.error_perm as e:
    assert str(e).startswith('530'), e
f.close()

a = ftplib.FTP()
a.connect('127.0.0.1', port, timeout=30)
a.login('alice', 'alice-pw')
a.storbinary('STOR up.bin', io.BytesIO(payload))
assert a.size('up.bin') == len(payload), a.size('up.bin')
assert a.mkd('newdir') in ('/newdir', 'newdir'), 'mkd'
a.storbinary('STOR newdir/inner.bin', io.BytesIO(b'inner'))
a.delete('newdir/inner.bin')
a.rmd('newdir')
a.delete('victim.txt')
try:
    a.delete('victim.txt')
    raise SystemExit('deleting a missing file succeeded')
except ftplib.error_perm as e:
    assert str(e).startswith('550'), e
a.quit()

b = ftplib.FTP()
b.connect('127.0.0.1', port, timeout=30)
b.login('bob', 'bob-pw')
got = []
b.retrbinary('RETR up.bin', got.append)
assert b''.join(got) == payload, 'bob download'
for action in (lambda: b.storbinary('STOR bob.bin', io.BytesIO(b'nope')),
               lambda: b.mkd('bobdir'),
               lambda: b.delete('up.bin')):
    try:
        action()
        raise SystemExit('read-only user could write')
    except ftplib.error_perm as e:
        assert str(e).startswith('550'), e
b.quit()
print('ok')
"#;

#[test]
fn python_ftplib_users_write_and_permissions() {
    if !require("python3") {
        return;
    }
    let (server, _users) = users_server("py-users");
    server.root.write("victim.txt", b"delete me\n");
    let work = workdir("py-users");
    let (ok, stdout, stderr) = run("python3", &["-c", PY_USERS, &port_arg(&server)], b"", &work.path);
    assert!(ok && stdout.trim() == "ok", "python failed:\n{stdout}\n{stderr}");
    let mut payload: Vec<u8> = (0..=255u8).cycle().take(256 * 4096).collect();
    payload.extend_from_slice(b"tail");
    assert_same(&server.root.read("up.bin"), &payload, "alice's upload on disk");
    assert!(!server.root.join("victim.txt").exists(), "DELE removed the file");
    assert!(!server.root.join("newdir").exists(), "RMD removed the directory");
    assert!(!server.root.join("bob.bin").exists(), "bob's STOR left no file");
    assert!(!server.root.join("bobdir").exists(), "bob's MKD left no directory");
    let leftovers: Vec<_> = std::fs::read_dir(&server.root.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, ["up.bin"], "no temp files left behind");
    server.assert_no_open_slots();
}

const PY_ACTIVE: &str = r#"
import ftplib, io, sys
port, out = int(sys.argv[1]), sys.argv[2]
f = ftplib.FTP()
f.connect('127.0.0.1', port, timeout=30)
f.login('alice', 'alice-pw')
f.set_pasv(False)
names = []
f.retrlines('NLST', names.append)
assert sorted(names) == ['big.bin'], names
lines = []
f.retrlines('LIST', lines.append)
assert len(lines) == 1 and lines[0].endswith(' big.bin'), lines
with open(out, 'wb') as o:
    f.retrbinary('RETR big.bin', o.write)
f.storbinary('STOR copy.bin', open(out, 'rb'))
f.quit()
print('ok')
"#;

#[test]
fn python_ftplib_active_mode() {
    if !require("python3") {
        return;
    }
    let (server, _users) = users_server("py-active");
    let content = random_bytes(3 * MIB + 5, 12);
    server.root.write("big.bin", &content);
    let work = workdir("py-active");
    let out = work.join("got.bin");
    let (ok, stdout, stderr) =
        run("python3", &["-c", PY_ACTIVE, &port_arg(&server), out.to_str().unwrap()], b"", &work.path);
    assert!(ok && stdout.trim() == "ok", "python failed:\n{stdout}\n{stderr}");
    assert_same(&work.read("got.bin"), &content, "active download");
    assert_same(&server.root.read("copy.bin"), &content, "active upload");
    server.assert_no_open_slots();
}

const PY_EVERY_COMMAND: &str = r#"
import ftplib, io, socket, sys
port = int(sys.argv[1])
expect = open('expect.bin', 'rb').read()
notes = b''.join(b'line %d\n' % i for i in range(500))

def check(resp, code):
    assert resp.startswith(code), (code, resp)
    return resp

def refused(code, fn, *args):
    try:
        fn(*args)
    except ftplib.Error as e:
        assert str(e).startswith(code), (code, str(e))
    else:
        raise AssertionError('expected a %s reply' % code)

def retr(cmd, rest=None):
    got = []
    f.retrbinary(cmd, got.append, rest=rest)
    return b''.join(got)

def drain(conn):
    with conn:
        return b''.join(iter(lambda: conn.recv(65536), b''))

f = ftplib.FTP()
f.connect('127.0.0.1', port, timeout=30)
check(f.getwelcome(), '220')
refused('530', f.pwd)
check(f.login('alice', 'alice-pw'), '230')

# Session basics.
check(f.voidcmd('NOOP'), '200')
check(f.sendcmd('SYST'), '215 UNIX')
feat = check(f.sendcmd('FEAT'), '211')
for want in (' MLST type*;size*;modify*;perm*;unique*;unix.mode*;', ' REST STREAM', ' SIZE', ' MDTM', ' MFMT',
             ' EPSV', ' UTF8'):
    assert want + '\n' in feat, (want, feat)
verbs = check(f.sendcmd('HELP'), '214').split()
for verb in ('ABOR', 'APPE', 'MLSD', 'MLST', 'MFMT', 'REIN', 'STOU', 'XPWD'):
    assert verb in verbs, (verb, verbs)
check(f.sendcmd('HELP RETR'), '214 Syntax: RETR')
refused('502', f.sendcmd, 'HELP BOGUS')
check(f.sendcmd('OPTS UTF8 ON'), '200')
check(f.sendcmd('ACCT billing'), '202')
check(f.sendcmd('ALLO 4096'), '202')
check(f.sendcmd('MODE S'), '200')
check(f.sendcmd('STRU F'), '200')
assert 'Logged in as alice' in check(f.sendcmd('STAT'), '211').splitlines()[2]
status = check(f.sendcmd('STAT sub'), '213').splitlines()
assert len(status) == 3 and status[1].startswith(' -rw-r--r--') and status[1].endswith(' inner.txt'), status

# Directories.
assert f.pwd() == '/'
check(f.cwd('sub'), '250')
assert f.pwd() == '/sub'
check(f.sendcmd('CDUP'), '250')
assert f.pwd() == '/'
check(f.sendcmd('XCWD sub'), '250')
check(f.sendcmd('XPWD'), '257 "/sub"')
check(f.sendcmd('XCUP'), '250')
assert f.pwd() == '/'
refused('550', f.cwd, 'missing')
assert f.mkd('made') == '/made'
check(f.sendcmd('XMKD made/inner'), '257 "/made/inner"')
check(f.sendcmd('XRMD made/inner'), '250')
check(f.rmd('made'), '250')
check(f.delete('victim.txt'), '250')
refused('550', f.delete, 'victim.txt')

# Listings and file facts.
names = ['data.bin', 'huge.bin', 'notes.txt', 'sub']
assert sorted(f.nlst()) == names, f.nlst()
lines = []
f.retrlines('LIST', lines.append)
assert sorted(l.split(None, 8)[8] for l in lines) == names, lines
assert f.size('data.bin') == len(expect)
check(f.sendcmd('MDTM data.bin'), '213 ')

# Transfers: RETR, REST + RETR, STOR, REST + STOR, APPE, RNFR/RNTO.
assert retr('RETR data.bin') == expect
assert retr('RETR data.bin', rest=123457) == expect[123457:]
check(f.storbinary('STOR up.bin', io.BytesIO(expect[:300000])), '226')
check(f.storbinary('STOR up.bin', io.BytesIO(expect[300000:700000]), rest=300000), '226')
check(f.storbinary('APPE up.bin', io.BytesIO(expect[700000:])), '226')
assert f.size('up.bin') == len(expect)
check(f.rename('up.bin', 'renamed.bin'), '250')
refused('550', f.size, 'up.bin')
check(f.storbinary('STOU data.bin', io.BytesIO(b'unique')), '226')

# TYPE A: CRLF on the wire, plain lines for retrlines, LF on disk after storlines.
check(f.sendcmd('TYPE A'), '200')
wire = drain(f.transfercmd('RETR notes.txt'))
check(f.voidresp(), '226')
assert wire == notes.replace(b'\n', b'\r\n'), wire[:40]
lines = []
check(f.retrlines('RETR notes.txt', lines.append), '226')
assert lines == notes.decode().splitlines(), lines[:3]
check(f.storlines('STOR lines.txt', io.BytesIO(b'one\r\ntwo\r\n')), '226')
check(f.voidcmd('TYPE I'), '200')

# MLSD, OPTS MLST, MLST.
entries = dict(f.mlsd('sub'))
assert sorted(entries) == ['.', '..', 'inner.txt'], entries
assert entries['.']['type'] == 'cdir' and entries['..']['type'] == 'pdir', entries
inner = entries['inner.txt']
assert (inner['type'], inner['size'], inner['perm'], inner['unix.mode']) == ('file', '6', 'adfrw', '0644'), inner
assert len(inner['modify']) == 14 and inner['modify'].isdigit(), inner
assert inner['unique'] and inner['unique'] != entries['.']['unique'], entries
assert 'size' not in entries['.'] and entries['.']['perm'] == 'cdeflmp', entries
top = dict(f.mlsd(facts=['type', 'size']))
assert top['data.bin'] == {'type': 'file', 'size': str(len(expect))}, top
assert top['sub'] == {'type': 'dir'}, top
mlst = check(f.sendcmd('MLST data.bin'), '250').splitlines()
assert mlst[1] == ' type=file;size=%d; /data.bin' % len(expect), mlst
check(f.sendcmd('OPTS MLST type;size;modify;perm;unique;unix.mode;'), '200')

# MFMT, SITE.
check(f.sendcmd('MFMT 20200102030405 data.bin'), '213 Modify=20200102030405; data.bin')
check(f.sendcmd('MDTM data.bin'), '213 20200102030405')
assert 'CHMOD' in check(f.sendcmd('SITE HELP'), '214')
check(f.sendcmd('SITE CHMOD 600 notes.txt'), '200')
assert 'unix.mode=0600;' in check(f.sendcmd('MLST notes.txt'), '250')

# Data connections. PASV is ftplib's default over IPv4 and carried everything above; now PORT...
f.set_pasv(False)
assert f.nlst('sub') == ['sub/inner.txt'], f.nlst('sub')
assert retr('RETR data.bin') == expect
f.set_pasv(True)
# ... EPRT by hand ...
with socket.create_server(('127.0.0.1', 0)) as listener:
    check(f.sendcmd('EPRT |1|127.0.0.1|%d|' % listener.getsockname()[1]), '200')
    check(f.sendcmd('NLST sub'), '150')
    got = drain(listener.accept()[0])
check(f.voidresp(), '226')
assert got.split() == [b'sub/inner.txt'], got
# ... and EPSV, which ftplib uses instead of PASV when it believes the connection is IPv6.
f.af = socket.AF_INET6
assert sorted(f.nlst()) == ['data.bin', 'data.bin.1', 'huge.bin', 'lines.txt', 'notes.txt', 'renamed.bin', 'sub'], \
    f.nlst()
check(f.sendcmd('EPSV ALL'), '200')
assert retr('RETR data.bin', rest=len(expect) - 10) == expect[-10:]
refused('503', f.sendcmd, 'PASV')
refused('503', f.sendcmd, 'PORT 127,0,0,1,200,1')

# ABOR in the middle of a large download, sent as a plain command line the way lftp and curl
# send it (ftplib's own abort() sends it as urgent data: python_ftplib_abort_with_urgent_data).
conn = f.transfercmd('RETR huge.bin')
assert len(conn.recv(65536)) > 0
f.putcmd('ABOR')
refused('426', f.getresp)
check(f.getresp(), '226')
conn.close()
check(f.sendcmd('ABOR'), '226')
check(f.voidcmd('NOOP'), '200')

# REIN: logged out, EPSV ALL forgotten; log in again.
check(f.sendcmd('REIN'), '220')
refused('530', f.pwd)
check(f.login('alice', 'alice-pw'), '230')
f.af = socket.AF_INET
assert f.pwd() == '/'
assert 'lines.txt' in f.nlst()
check(f.quit(), '221')
print('ok')
"#;

#[test]
fn python_ftplib_every_command() {
    if !require("python3") {
        return;
    }
    let (server, _users) = users_server("py-every");
    let data = random_bytes(MIB + 3, 13);
    let notes: Vec<u8> = (0..500).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
    server.root.write("data.bin", &data);
    server.root.write("huge.bin", &vec![0x5a; 32 * MIB]);
    server.root.write("notes.txt", &notes);
    server.root.write("sub/inner.txt", b"inner\n");
    server.root.write("victim.txt", b"delete me\n");
    set_mode(&server.root.join("sub/inner.txt"), 0o644);
    set_mode(&server.root.join("notes.txt"), 0o644);
    let work = workdir("py-every");
    work.write("expect.bin", &data);
    let (ok, stdout, stderr) = run("python3", &["-c", PY_EVERY_COMMAND, &port_arg(&server)], b"", &work.path);
    assert!(ok && stdout.trim() == "ok", "python failed:\n{stdout}\n{stderr}");
    assert_same(&server.root.read("renamed.bin"), &data, "STOR + REST STOR + APPE, then RNFR/RNTO");
    assert!(!server.root.join("up.bin").exists(), "renamed away");
    assert_eq!(server.root.read("data.bin.1"), b"unique", "STOU data.bin picked a new name");
    assert_same(&server.root.read("lines.txt"), b"one\ntwo\n", "ASCII upload stored with LF");
    assert!(!server.root.join("victim.txt").exists(), "DELE");
    assert!(!server.root.join("made").exists(), "RMD");
    let meta = std::fs::metadata(server.root.join("data.bin")).unwrap();
    let mtime = meta.modified().unwrap().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(mtime, 1_577_934_245, "MFMT 20200102030405 set the mtime");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(server.root.join("notes.txt")).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o600, "SITE CHMOD 600");
    server.assert_no_open_slots();
}

const PY_ABORT_URGENT: &str = r#"
import ftplib, sys
f = ftplib.FTP()
f.connect('127.0.0.1', int(sys.argv[1]), timeout=5)
f.login()
f.voidcmd('TYPE I')
conn = f.transfercmd('RETR huge.bin')
assert len(conn.recv(65536)) > 0
resp = f.abort()  # b'ABOR\r\n' sent with MSG_OOB: the final LF is the TCP urgent byte
assert resp.startswith('426'), resp
assert f.voidresp().startswith('226')
conn.close()
assert f.voidcmd('NOOP').startswith('200')
assert f.quit().startswith('221')
print('ok')
"#;

#[test]
fn python_ftplib_abort_with_urgent_data() {
    if !require("python3") {
        return;
    }
    let server = TestServer::start("py-abort");
    server.root.write("huge.bin", &random_bytes(32 * 1024 * 1024, 9));
    let work = workdir("py-abort");
    let (ok, stdout, stderr) = run("python3", &["-c", PY_ABORT_URGENT, &port_arg(&server)], b"", &work.path);
    assert!(ok && stdout.trim() == "ok", "python failed:\n{stdout}\n{stderr}");
    server.assert_no_open_slots();
}

const PY_STOU: &str = r#"
import ftplib, socket, sys
f = ftplib.FTP()
f.connect('127.0.0.1', int(sys.argv[1]), timeout=5)
f.login('alice', 'alice-pw')
host, port = f.makepasv()
data = socket.create_connection((host, port), timeout=5)
resp = f.sendcmd('STOU report.txt')
assert resp == '150 FILE: report.txt.1', resp
data.sendall(b'second')
data.close()
resp = f.voidresp()  # RFC 1123 4.1.2.9: the one 1yz reply names the file; the next is the 226
assert resp.startswith('226'), resp
assert f.quit().startswith('221')
print('ok')
"#;

#[test]
fn python_ftplib_stou() {
    if !require("python3") {
        return;
    }
    let (server, _users) = users_server("py-stou");
    server.root.write("report.txt", b"original");
    let work = workdir("py-stou");
    let (ok, stdout, stderr) = run("python3", &["-c", PY_STOU, &port_arg(&server)], b"", &work.path);
    assert!(ok && stdout.trim() == "ok", "python failed:\n{stdout}\n{stderr}");
    assert_eq!(server.root.read("report.txt"), b"original");
    assert_eq!(server.root.read("report.txt.1"), b"second");
    server.assert_no_open_slots();
}

const PY_IPV6: &str = r#"
import ftplib, io, socket, sys
expect = open('expect.bin', 'rb').read()
f = ftplib.FTP()
f.set_debuglevel(1)
f.connect('::1', int(sys.argv[1]), timeout=30)
assert f.af == socket.AF_INET6
assert f.login('alice', 'alice-pw').startswith('230')
assert f.nlst() == ['data.bin'], f.nlst()
got = []
f.retrbinary('RETR data.bin', got.append)
assert b''.join(got) == expect
f.storbinary('STOR passive.bin', io.BytesIO(expect))
f.set_pasv(False)
got = []
f.retrbinary('RETR data.bin', got.append)
assert b''.join(got) == expect
f.storbinary('STOR active.bin', io.BytesIO(expect[::-1]))
assert f.quit().startswith('221')
print('ok')
"#;

#[test]
fn python_ftplib_ipv6_epsv_and_eprt() {
    if !require("python3") {
        return;
    }
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIP: cannot bind [::1]");
        return;
    }
    let (server, _users) = users_server_with("py-ipv6", |cfg| cfg.listen = "[::1]:0".parse().unwrap());
    let data = random_bytes(2 * MIB + 1, 14);
    server.root.write("data.bin", &data);
    let work = workdir("py-ipv6");
    work.write("expect.bin", &data);
    let (ok, stdout, stderr) = run("python3", &["-c", PY_IPV6, &port_arg(&server)], b"", &work.path);
    assert!(ok && stdout.lines().last() == Some("ok"), "python failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("*cmd* 'EPSV'"), "passive mode over IPv6 is EPSV:\n{stdout}");
    assert!(stdout.contains("*cmd* 'EPRT |2|::1|"), "active mode over IPv6 is EPRT:\n{stdout}");
    assert!(!stdout.contains("*cmd* 'PASV'") && !stdout.contains("*cmd* 'PORT"), "{stdout}");
    assert_same(&server.root.read("passive.bin"), &data, "IPv6 EPSV upload");
    let reversed: Vec<u8> = data.iter().rev().copied().collect();
    assert_same(&server.root.read("active.bin"), &reversed, "IPv6 EPRT upload");
    server.assert_no_open_slots();
}

// ---------------------------------------------------------------------------------------------
// curl
// ---------------------------------------------------------------------------------------------

#[test]
fn curl_list_and_nlst() {
    if !require("curl") {
        return;
    }
    let server = TestServer::start("curl-list");
    server.root.write("one.txt", b"1\n");
    server.root.write("two.bin", &random_bytes(1000, 1));
    server.root.write("sub/three.txt", b"3\n");
    let work = workdir("curl-list");

    let (ok, list, err) = run("curl", &["-sS", &server.url("/")], b"", &work.path);
    assert!(ok, "curl LIST: {err}");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    let dir_line = lines.iter().find(|l| l.trim_end().ends_with(" sub")).unwrap_or_else(|| panic!("{list}"));
    assert!(dir_line.starts_with('d'), "{dir_line}");
    let bin_line = lines.iter().find(|l| l.trim_end().ends_with(" two.bin")).unwrap_or_else(|| panic!("{list}"));
    assert!(bin_line.starts_with('-') && bin_line.split_whitespace().nth(4) == Some("1000"), "{bin_line}");

    let (ok, nlst, err) = run("curl", &["-sS", "-l", &server.url("/")], b"", &work.path);
    assert!(ok, "curl NLST: {err}");
    assert_eq!(sorted_lines(&nlst), ["one.txt", "sub", "two.bin"]);

    let (ok, sub, err) = run("curl", &["-sS", "-l", &server.url("/sub/")], b"", &work.path);
    assert!(ok, "curl NLST sub: {err}");
    assert_eq!(sorted_lines(&sub), ["three.txt"]);
    server.assert_no_open_slots();
}

#[test]
fn curl_download_passive_and_active() {
    if !require("curl") {
        return;
    }
    let server = TestServer::start("curl-get");
    let content = random_bytes(4 * MIB + 3, 21);
    server.root.write("dir/big.bin", &content);
    let work = workdir("curl-get");

    let (ok, _, err) = run("curl", &["-sS", "-o", "pasv.bin", &server.url("/dir/big.bin")], b"", &work.path);
    assert!(ok, "curl passive download: {err}");
    assert_same(&work.read("pasv.bin"), &content, "curl EPSV download");

    let (ok, _, err) =
        run("curl", &["-sS", "--disable-epsv", "-o", "pasv4.bin", &server.url("/dir/big.bin")], b"", &work.path);
    assert!(ok, "curl PASV download: {err}");
    assert_same(&work.read("pasv4.bin"), &content, "curl PASV download");

    let (ok, _, err) = run(
        "curl",
        &["-sS", "--ftp-port", "127.0.0.1", "-o", "active.bin", &server.url("/dir/big.bin")],
        b"",
        &work.path,
    );
    assert!(ok, "curl active (EPRT) download: {err}");
    assert_same(&work.read("active.bin"), &content, "curl EPRT download");

    let (ok, _, err) = run(
        "curl",
        &["-sS", "--ftp-port", "127.0.0.1", "--disable-eprt", "-o", "port.bin", &server.url("/dir/big.bin")],
        b"",
        &work.path,
    );
    assert!(ok, "curl active (PORT) download: {err}");
    assert_same(&work.read("port.bin"), &content, "curl PORT download");
    server.assert_no_open_slots();
}

#[test]
fn curl_upload_as_rw_user() {
    if !require("curl") {
        return;
    }
    let (server, _users) = users_server("curl-put");
    let content = random_bytes(2 * MIB + 99, 31);
    let work = workdir("curl-put");
    work.write("local.bin", &content);

    let alice = format!("alice:{ALICE_PW}");
    let (ok, _, err) = run("curl", &["-sS", "-u", &alice, "-T", "local.bin", &server.url("/up.bin")], b"", &work.path);
    assert!(ok, "curl upload: {err}");
    assert_same(&server.root.read("up.bin"), &content, "curl upload on disk");

    // Into a directory that does not exist yet: curl creates it with MKD.
    let (ok, _, err) = run(
        "curl",
        &["-sS", "--ftp-create-dirs", "-u", &alice, "-T", "local.bin", &server.url("/new/deeper/up.bin")],
        b"",
        &work.path,
    );
    assert!(ok, "curl upload with --ftp-create-dirs: {err}");
    assert_same(&server.root.read("new/deeper/up.bin"), &content, "curl upload into new dirs");

    // And back down again, as alice.
    let (ok, _, err) = run("curl", &["-sS", "-u", &alice, "-o", "back.bin", &server.url("/up.bin")], b"", &work.path);
    assert!(ok, "curl download as alice: {err}");
    assert_same(&work.read("back.bin"), &content, "curl round trip");

    // bob is read-only: the upload fails (curl 25: upload failed) and leaves nothing behind.
    let bob = format!("bob:{BOB_PW}");
    let (ok, _, _) = run("curl", &["-s", "-u", &bob, "-T", "local.bin", &server.url("/bob.bin")], b"", &work.path);
    assert!(!ok, "a read-only user's upload must fail");
    assert!(!server.root.join("bob.bin").exists());

    // A wrong password: curl 67 (login denied).
    let status = std::process::Command::new("curl")
        .args(["-s", "-u", "alice:wrong", "-o", "x", &server.url("/up.bin")])
        .current_dir(&work.path)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(67), "wrong password");
    server.assert_no_open_slots();
}

#[test]
fn curl_ascii_download() {
    if !require("curl") {
        return;
    }
    let server = TestServer::start("curl-ascii");
    let text = b"first line\nsecond line\n\nlast line without newline";
    server.root.write("notes.txt", text);
    let work = workdir("curl-ascii");

    let (ok, _, err) = run("curl", &["-sS", "-B", "-o", "ascii.txt", &server.url("/notes.txt")], b"", &work.path);
    assert!(ok, "curl -B: {err}");
    assert_same(&work.read("ascii.txt"), text, "ASCII download converted back to LF");

    // ";type=a" in the URL is the same thing; ";type=i" gets the bytes as stored.
    let (ok, _, err) = run("curl", &["-sS", "-o", "typea.txt", &server.url("/notes.txt;type=a")], b"", &work.path);
    assert!(ok, "curl ;type=a: {err}");
    assert_same(&work.read("typea.txt"), text, "type=a download");

    // TYPE A really did put CRLF on the wire: look at it through a raw client.
    let mut raw = Raw::anonymous(server.addr);
    raw.expect_cmd("TYPE A", 200);
    let wire = raw.download("RETR notes.txt");
    assert_same(&wire, b"first line\r\nsecond line\r\n\r\nlast line without newline", "ASCII bytes on the wire");
    raw.expect_cmd("QUIT", 221);
    drop(raw);
    server.assert_no_open_slots();
}

#[test]
fn curl_missing_file_fails_with_78() {
    if !require("curl") {
        return;
    }
    let server = TestServer::start("curl-missing");
    server.root.write("present.txt", b"here\n");
    let work = workdir("curl-missing");
    let curl_status =
        |args: &[&str]| std::process::Command::new("curl").args(args).current_dir(&work.path).status().unwrap().code();
    // curl asks SIZE first; the 550 to that is enough for 78 (remote file not found).
    assert_eq!(curl_status(&["-s", "-o", "out", &server.url("/absent.bin")]), Some(78), "SIZE → 550");
    // Without SIZE it is the 550 to RETR itself that must give 78.
    let url = server.url("/absent.bin");
    assert_eq!(curl_status(&["-s", "--ignore-content-length", "-o", "out", &url]), Some(78), "RETR → 550");
    // A missing directory on the way: CWD fails, curl 9 (remote access denied).
    assert_eq!(curl_status(&["-s", "-o", "out", &server.url("/nodir/absent.bin")]), Some(9), "CWD → 550");
    assert!(!work.join("out").exists(), "no output file for a failed download");
    // The server is still fine afterwards.
    let (ok, got, err) = run("curl", &["-sS", &server.url("/present.txt")], b"", &work.path);
    assert!(ok && got == "here\n", "{got:?} {err}");
    server.assert_no_open_slots();
}

#[test]
fn curl_resume_download_with_explicit_pasv() {
    if !require("curl") {
        return;
    }
    let server = TestServer::start("curl-resume-get");
    let content = random_bytes(4 * MIB + 1, 22);
    server.root.write("dir/big.bin", &content);
    let work = workdir("curl-resume-get");
    let url = server.url("/dir/big.bin");

    // EPSV (curl's first choice for --ftp-pasv), resuming after the first 1 000 000 bytes, through
    // a tap on the control connection to see the QUIT that curl's -v leaves out.
    work.write("part.bin", &content[..1_000_000]);
    let tap = ControlTap::start(server.addr);
    let tapped = format!("ftp://{}/dir/big.bin", tap.addr);
    let (ok, _, log) = run("curl", &["-sS", "-v", "--ftp-pasv", "-C", "-", "-o", "part.bin", &tapped], b"", &work.path);
    assert!(ok, "curl -C - (EPSV):\n{log}");
    assert_same(&work.read("part.bin"), &content, "curl resumed download");
    for line in ["> CWD dir", "> EPSV", "> SIZE big.bin", "> REST 1000000", "> RETR big.bin", "< 226"] {
        assert!(has_line(&log, line), "expected {line:?} in curl's transcript:\n{log}");
    }
    let sent = tap.sent();
    assert!(sent.ends_with("RETR big.bin\r\nQUIT\r\n"), "curl ends the session with QUIT:\n{sent}");

    // PASV, resuming after 2 000 000 bytes.
    work.write("part4.bin", &content[..2_000_000]);
    let args = ["-sS", "-v", "--ftp-pasv", "--disable-epsv", "-C", "-", "-o", "part4.bin", &url];
    let (ok, _, log) = run("curl", &args, b"", &work.path);
    assert!(ok, "curl -C - (PASV):\n{log}");
    assert_same(&work.read("part4.bin"), &content, "curl resumed download over PASV");
    assert!(has_line(&log, "> PASV") && !has_line(&log, "> EPSV"), "{log}");
    assert!(has_line(&log, "> REST 2000000"), "{log}");
    server.assert_no_open_slots();
}

#[test]
fn curl_resume_upload_as_rw_user() {
    if !require("curl") {
        return;
    }
    let (server, _users) = users_server("curl-resume-put");
    let content = random_bytes(5 * MIB + 77, 23);
    server.root.write("up.bin", &content[..2_000_000]);
    let work = workdir("curl-resume-put");
    work.write("full.bin", &content);
    let alice = format!("alice:{ALICE_PW}");
    let args = ["-sS", "-v", "-u", &alice, "-C", "-", "-T", "full.bin", &server.url("/up.bin")];
    let (ok, _, log) = run("curl", &args, b"", &work.path);
    assert!(ok, "curl -C - -T:\n{log}");
    assert!(has_line(&log, "> SIZE up.bin") && has_line(&log, "> APPE up.bin"), "{log}");
    assert_same(&server.root.read("up.bin"), &content, "curl resumed upload");
    server.assert_no_open_slots();
}

// ---------------------------------------------------------------------------------------------
// tnftp
// ---------------------------------------------------------------------------------------------

fn tnftp(server: &TestServer, script: &str, cwd: &std::path::Path) -> (bool, String, String) {
    run("tnftp", &["-n", "-v", "127.0.0.1", &port_arg(server)], script.as_bytes(), cwd)
}

#[test]
fn tnftp_login_ls_cd_get_bye() {
    if !require("tnftp") {
        return;
    }
    let server = TestServer::start("tnftp-get");
    let content = random_bytes(5 * MIB + 1, 41);
    server.root.write("big.bin", &content);
    server.root.write("sub/inner.txt", b"inner\n");
    let work = workdir("tnftp-get");
    let script = "user anonymous x\nls\ncd sub\npwd\nls\ncd ..\nbinary\nget big.bin\nbye\n";
    let (ok, stdout, stderr) = tnftp(&server, script, &work.path);
    assert!(ok, "tnftp failed:\n{stdout}\n{stderr}");
    assert!(!has_502(&stdout), "a command was not implemented:\n{stdout}");
    assert!(!stdout.contains("bare linefeeds"), "{stdout}");
    assert!(stdout.contains("Remote directory: /sub\n"), "pwd after cd sub:\n{stdout}");
    assert!(stdout.contains(" inner.txt"), "ls in sub:\n{stdout}");
    assert_same(&work.read("big.bin"), &content, "tnftp get");
    server.assert_no_open_slots();
}

#[test]
fn tnftp_rw_user_put_mkdir_delete() {
    if !require("tnftp") {
        return;
    }
    let (server, _users) = users_server("tnftp-put");
    server.root.write("old.txt", b"old\n");
    let content = random_bytes(3 * MIB + 7, 42);
    let work = workdir("tnftp-put");
    work.write("up.bin", &content);
    let text: Vec<u8> = (0..3000).flat_map(|i| format!("text line {i}\n").into_bytes()).collect();
    work.write("notes.txt", &text);
    let script = format!(
        "user alice {ALICE_PW}\nbinary\nput up.bin\nmkdir newdir\ncd newdir\nput up.bin copy.bin\ncd ..\n\
         mkdir gone\nrmdir gone\ndelete old.txt\nascii\nput notes.txt\nls\nbye\n"
    );
    let (ok, stdout, stderr) = tnftp(&server, &script, &work.path);
    assert!(ok, "tnftp failed:\n{stdout}\n{stderr}");
    assert!(!has_502(&stdout), "a command was not implemented:\n{stdout}");
    assert_same(&server.root.read("up.bin"), &content, "tnftp put");
    assert_same(&server.root.read("newdir/copy.bin"), &content, "tnftp put into new dir");
    assert!(!server.root.join("old.txt").exists(), "delete");
    assert!(!server.root.join("gone").exists(), "rmdir");
    assert_same(&server.root.read("notes.txt"), &text, "ASCII put stores LF line endings");
    assert!(!stdout.contains("bare linefeeds"), "{stdout}");
    server.assert_no_open_slots();
}

#[test]
fn tnftp_ascii_get_has_no_bare_linefeeds() {
    if !require("tnftp") {
        return;
    }
    let server = TestServer::start("tnftp-ascii");
    let text: Vec<u8> = (0..2000).flat_map(|i| format!("line {i} of a text file\n").into_bytes()).collect();
    server.root.write("notes.txt", &text);
    let work = workdir("tnftp-ascii");
    let (ok, stdout, stderr) = tnftp(&server, "user anonymous x\nascii\nget notes.txt\nbye\n", &work.path);
    assert!(ok, "tnftp failed:\n{stdout}\n{stderr}");
    assert!(!stdout.contains("bare linefeeds") && !stderr.contains("bare linefeeds"), "{stdout}\n{stderr}");
    assert!(!has_502(&stdout), "{stdout}");
    assert_same(&work.read("notes.txt"), &text, "ASCII get keeps LF line endings locally");
    server.assert_no_open_slots();
}

#[test]
fn tnftp_reget_resumes_partial_download() {
    if !require("tnftp") {
        return;
    }
    let server = TestServer::start("tnftp-reget");
    let content = random_bytes(4 * MIB + 3, 43);
    server.root.write("big.bin", &content);
    let work = workdir("tnftp-reget");
    work.write("big.bin", &content[..777_777]);
    let (ok, stdout, stderr) = tnftp(&server, "user anonymous x\nbinary\nreget big.bin\nbye\n", &work.path);
    assert!(ok, "tnftp failed:\n{stdout}\n{stderr}");
    assert!(has_line(&stdout, "350 Restarting at 777777"), "reget sent REST:\n{stdout}");
    assert!(has_line(&stdout, "221 Goodbye"), "bye sent QUIT:\n{stdout}");
    assert_same(&work.read("big.bin"), &content, "tnftp reget");
    server.assert_no_open_slots();
}

#[test]
fn tnftp_mget_named_files_via_nlst() {
    if !require("tnftp") {
        return;
    }
    let server = TestServer::start("tnftp-mget");
    let files: Vec<(&str, Vec<u8>)> =
        vec![("one.txt", b"one\n".to_vec()), ("two.txt", b"two\n".to_vec()), ("three.bin", random_bytes(MIB, 44))];
    for (name, bytes) in &files {
        server.root.write(name, bytes);
    }
    server.root.write("other.txt", b"not asked for\n");
    let work = workdir("tnftp-mget");
    let script = "user anonymous x\ndebug\nprompt\nbinary\nmget one.txt two.txt three.bin\nbye\n";
    let (ok, stdout, stderr) = tnftp(&server, script, &work.path);
    assert!(ok, "tnftp failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("Interactive mode off."), "{stdout}");
    for (name, bytes) in &files {
        assert!(has_line(&stdout, &format!("---> NLST {name}")), "mget expands {name} with NLST:\n{stdout}");
        assert_same(&work.read(name), bytes, name);
    }
    assert!(!work.join("other.txt").exists());
    server.assert_no_open_slots();
}

#[test]
fn tnftp_mget_wildcard() {
    if !require("tnftp") {
        return;
    }
    let server = TestServer::start("tnftp-mget-glob");
    server.root.write("one.txt", b"one\n");
    server.root.write("two.txt", b"two\n");
    server.root.write("three.bin", b"three\n");
    let work = workdir("tnftp-mget-glob");
    let (ok, stdout, stderr) = tnftp(&server, "user anonymous x\nprompt\nbinary\nmget *.txt\nbye\n", &work.path);
    assert!(ok, "tnftp failed:\n{stdout}\n{stderr}");
    assert_eq!(work.read("one.txt"), b"one\n", "{stdout}");
    assert_eq!(work.read("two.txt"), b"two\n", "{stdout}");
    assert!(!work.join("three.bin").exists());
    server.assert_no_open_slots();
}

#[test]
fn tnftp_active_mode_ls_get_put() {
    if !require("tnftp") {
        return;
    }
    let (server, _users) = users_server("tnftp-active");
    let content = random_bytes(2 * MIB + 5, 45);
    let upload = random_bytes(MIB + 9, 46);
    server.root.write("big.bin", &content);
    let work = workdir("tnftp-active");
    work.write("up.bin", &upload);
    let script = format!("user alice {ALICE_PW}\npassive off\nbinary\nls\nget big.bin\nput up.bin\nbye\n");
    let (ok, stdout, stderr) = tnftp(&server, &script, &work.path);
    assert!(ok, "tnftp failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("Passive mode: off"), "{stdout}");
    assert!(has_line(&stdout, "200 PORT command successful"), "EPRT/PORT accepted:\n{stdout}");
    assert!(!stdout.contains("Entering") && !has_502(&stdout), "no passive mode, nothing unimplemented:\n{stdout}");
    assert!(stdout.contains(" big.bin\n"), "ls:\n{stdout}");
    assert_same(&work.read("big.bin"), &content, "tnftp active get");
    assert_same(&server.root.read("up.bin"), &upload, "tnftp active put");
    server.assert_no_open_slots();
}

// ---------------------------------------------------------------------------------------------
// inetutils-ftp
// ---------------------------------------------------------------------------------------------

fn inetutils_session(label: &str, passive: bool) {
    let (server, _users) = users_server(label);
    let content = random_bytes(2 * MIB + 11, 51);
    let upload = random_bytes(MIB + 13, 52);
    server.root.write("big.bin", &content);
    let work = workdir(label);
    work.write("up.bin", &upload);
    let mode = if passive { "passive\n" } else { "" };
    let script = format!("user alice {ALICE_PW}\n{mode}binary\nls\nget big.bin\nput up.bin\nbye\n");
    let (ok, stdout, stderr) =
        run("inetutils-ftp", &["-n", "-v", "127.0.0.1", &port_arg(&server)], script.as_bytes(), &work.path);
    assert!(ok, "inetutils-ftp failed:\n{stdout}\n{stderr}");
    assert!(!has_502(&stdout), "a command was not implemented:\n{stdout}");
    assert!(stdout.contains(" big.bin"), "ls output:\n{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with(if passive { "227" } else { "200 PORT" }) || l.starts_with("229")),
        "expected the {} data connection set-up in the transcript:\n{stdout}",
        if passive { "passive" } else { "active" }
    );
    assert_same(&work.read("big.bin"), &content, "inetutils-ftp get");
    assert_same(&server.root.read("up.bin"), &upload, "inetutils-ftp put");
    server.assert_no_open_slots();
}

#[test]
fn inetutils_ftp_active_ls_get_put_bye() {
    if !require("inetutils-ftp") {
        return;
    }
    inetutils_session("inet-active", false);
}

#[test]
fn inetutils_ftp_passive_ls_get_put_bye() {
    if !require("inetutils-ftp") {
        return;
    }
    inetutils_session("inet-passive", true);
}

#[test]
fn inetutils_ftp_cd_reget_bye() {
    if !require("inetutils-ftp") {
        return;
    }
    let (server, _users) = users_server("inet-reget");
    let content = random_bytes(3 * MIB + 1, 53);
    server.root.write("tree/sub/data.bin", &content);
    let work = workdir("inet-reget");
    work.write("data.bin", &content[..500_000]);
    let script = format!("user alice {ALICE_PW}\nbinary\ncd tree/sub\npwd\nreget data.bin\nbye\n");
    let (ok, stdout, stderr) =
        run("inetutils-ftp", &["-n", "-v", "127.0.0.1", &port_arg(&server)], script.as_bytes(), &work.path);
    assert!(ok, "inetutils-ftp failed:\n{stdout}\n{stderr}");
    assert!(has_line(&stdout, "230 "), "login:\n{stdout}");
    assert!(has_line(&stdout, "257 \"/tree/sub\""), "cd then pwd:\n{stdout}");
    assert!(has_line(&stdout, "350 Restarting at 500000"), "reget:\n{stdout}");
    assert!(has_line(&stdout, "221 "), "bye:\n{stdout}");
    assert_same(&work.read("data.bin"), &content, "inetutils-ftp reget");
    server.assert_no_open_slots();
}

// ---------------------------------------------------------------------------------------------
// wget
// ---------------------------------------------------------------------------------------------

#[test]
fn wget_single_file() {
    if !require("wget") {
        return;
    }
    let server = TestServer::start("wget-one");
    let content = random_bytes(5 * MIB + 9, 61);
    server.root.write("big.bin", &content);
    let work = workdir("wget-one");
    let (ok, stdout, stderr) = run("wget", &["-q", "-O", "got.bin", &server.url("/big.bin")], b"", &work.path);
    assert!(ok, "wget failed:\n{stdout}\n{stderr}");
    assert_same(&work.read("got.bin"), &content, "wget download");
    server.assert_no_open_slots();
}

#[test]
fn wget_recursive_mirror() {
    if !require("wget") {
        return;
    }
    let server = TestServer::start("wget-mirror");
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("tree/top.txt", b"top\n".to_vec()),
        ("tree/with space.txt", b"spaced out\n".to_vec()),
        ("tree/sub/data.bin", random_bytes(200_000, 62)),
        ("tree/sub/deeper/empty", Vec::new()),
    ];
    for (path, bytes) in &files {
        server.root.write(path, bytes);
    }
    server.root.write("elsewhere.txt", b"not part of the mirror\n");
    let work = workdir("wget-mirror");
    let (ok, stdout, stderr) = run("wget", &["-q", "-r", "-nH", &server.url("/tree/")], b"", &work.path);
    assert!(ok, "wget -r failed:\n{stdout}\n{stderr}");
    for (path, bytes) in &files {
        assert!(work.join(path).is_file(), "{path} missing from the mirror");
        assert_same(&work.read(path), bytes, path);
    }
    assert!(!work.join("elsewhere.txt").exists(), "mirror stayed inside tree/");
    let mut local: Vec<PathBuf> = Vec::new();
    let mut stack = vec![work.join("tree")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                local.push(path.strip_prefix(&work.path).unwrap().to_path_buf());
            }
        }
    }
    local.sort();
    let mut want: Vec<PathBuf> = files.iter().map(|(p, _)| PathBuf::from(p)).collect();
    want.sort();
    assert_eq!(local, want, "exactly the served files, no .listing leftovers");
    server.assert_no_open_slots();
}

#[test]
fn wget_login_as_user() {
    if !require("wget") {
        return;
    }
    let (server, _users) = users_server("wget-login");
    let content = random_bytes(MIB + 1, 63);
    server.root.write("private.bin", &content);
    let work = workdir("wget-login");
    let url = format!("ftp://alice:{ALICE_PW}@{}/private.bin", server.addr);
    let (ok, stdout, stderr) = run("wget", &["-q", "-O", "got.bin", &url], b"", &work.path);
    assert!(ok, "wget as alice failed:\n{stdout}\n{stderr}");
    assert_same(&work.read("got.bin"), &content, "wget download as alice");
    // A wrong password: exit status 6, "username/password authentication failure".
    let bad = format!("ftp://alice:wrong@{}/private.bin", server.addr);
    let status = std::process::Command::new("wget")
        .args(["-q", "-t", "1", "-O", "bad.bin", &bad])
        .current_dir(&work.path)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(6), "wget with a wrong password");
    server.assert_no_open_slots();
}

#[test]
fn wget_directory_listing_after_cwd() {
    if !require("wget") {
        return;
    }
    let server = TestServer::start("wget-list");
    server.root.write("tree/with space.txt", b"x\n");
    server.root.write("tree/sub/inner.txt", b"y\n");
    server.root.write("outside.txt", b"z\n");
    let work = workdir("wget-list");
    let (ok, _, log) = run("wget", &["-d", &server.url("/tree/")], b"", &work.path);
    assert!(ok, "wget of a directory failed:\n{log}");
    assert!(has_line(&log, "--> CWD /tree") && has_line(&log, "--> LIST"), "{log}");
    let index = String::from_utf8(work.read("index.html")).unwrap();
    let tree = server.url("/tree/");
    for href in [format!("href=\"{tree}sub/\""), format!("href=\"{tree}with%20space.txt\"")] {
        assert!(index.contains(&href), "{href} in the generated index:\n{index}");
    }
    assert!(!index.contains("outside.txt"), "{index}");
    server.assert_no_open_slots();
}

#[test]
fn wget_continue_resumes_partial_download() {
    if !require("wget") {
        return;
    }
    let server = TestServer::start("wget-continue");
    let content = random_bytes(4 * MIB + 7, 64);
    server.root.write("big.bin", &content);
    let work = workdir("wget-continue");
    work.write("big.bin", &content[..1_000_000]);
    let (ok, _, log) = run("wget", &["-d", "-c", &server.url("/big.bin")], b"", &work.path);
    assert!(ok, "wget -c failed:\n{log}");
    assert!(has_line(&log, "--> REST 1000000"), "{log}");
    assert_same(&work.read("big.bin"), &content, "wget -c");
    server.assert_no_open_slots();
}

#[test]
fn wget_active_mode() {
    if !require("wget") {
        return;
    }
    let server = TestServer::start("wget-active");
    let content = random_bytes(3 * MIB + 3, 65);
    server.root.write("big.bin", &content);
    let work = workdir("wget-active");
    let (ok, _, log) =
        run("wget", &["-d", "--no-passive-ftp", "-O", "got.bin", &server.url("/big.bin")], b"", &work.path);
    assert!(ok, "wget --no-passive-ftp failed:\n{log}");
    assert!(has_line(&log, "--> PORT ") || has_line(&log, "--> EPRT "), "{log}");
    assert!(!has_line(&log, "--> PASV") && !has_line(&log, "--> EPSV"), "{log}");
    assert_same(&work.read("got.bin"), &content, "wget active download");
    server.assert_no_open_slots();
}

// ---------------------------------------------------------------------------------------------
// lftp
// ---------------------------------------------------------------------------------------------

/// Runs lftp with `commands` against the server, as `login` ("user,password") or anonymously.
/// `-d` puts the protocol transcript (`---> CMD`, `<--- reply`) on stderr. Errors end lftp with
/// a failure status instead of a retry loop.
fn lftp(server: &TestServer, login: Option<&str>, commands: &str, cwd: &Path) -> (bool, String, String) {
    let script = format!(
        "set cmd:fail-exit yes; set net:max-retries 2; set net:reconnect-interval-base 1; set net:timeout 20; \
         {commands}; bye"
    );
    let port = port_arg(server);
    let mut args = vec!["-d"];
    if let Some(login) = login {
        args.extend(["-u", login]);
    }
    args.extend(["-p", &port, "-e", &script, "127.0.0.1"]);
    run("lftp", &args, b"", cwd)
}

fn alice_login() -> String {
    format!("alice,{ALICE_PW}")
}

#[test]
fn lftp_login_ls_cd_get_put_quit() {
    if !require("lftp") {
        return;
    }
    let (server, _users) = users_server("lftp-basic");
    let content = random_bytes(2 * MIB + 3, 81);
    let upload = random_bytes(MIB + 5, 82);
    server.root.write("top.txt", b"top\n");
    server.root.write("sub/inner.bin", &content);
    let work = workdir("lftp-basic");
    work.write("local.bin", &upload);
    let commands = "ls; cd sub; pwd; ls; get inner.bin; cd /; put local.bin -o up.bin";
    let (ok, stdout, log) = lftp(&server, Some(&alice_login()), commands, &work.path);
    assert!(ok, "lftp failed:\n{stdout}\n{log}");
    assert!(has_line(&log, "---> USER alice") && has_line(&log, "<--- 230"), "login:\n{log}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with('d') && l.ends_with(" sub")), "ls of /:\n{stdout}");
    assert!(lines.iter().any(|l| l.ends_with(" top.txt")), "ls of /:\n{stdout}");
    assert!(lines.iter().any(|l| l.ends_with("/sub")), "pwd after cd sub:\n{stdout}");
    assert!(lines.iter().any(|l| l.starts_with('-') && l.ends_with(" inner.bin")), "ls of /sub:\n{stdout}");
    assert_same(&work.read("inner.bin"), &content, "lftp get");
    assert_same(&server.root.read("up.bin"), &upload, "lftp put");
    assert!(has_line(&log, "---> QUIT") && has_line(&log, "<--- 221"), "bye sends QUIT:\n{log}");
    server.assert_no_open_slots();
}

#[test]
fn lftp_mirror_downloads_tree() {
    if !require("lftp") {
        return;
    }
    let server = TestServer::start("lftp-mirror");
    write_tree(&server.root, "tree");
    server.root.write("elsewhere.txt", b"not part of the mirror\n");
    let work = workdir("lftp-mirror");
    let (ok, stdout, log) = lftp(&server, None, "mirror /tree copy", &work.path);
    assert!(ok, "lftp mirror failed:\n{stdout}\n{log}");
    assert!(has_line(&log, "---> MLSD"), "mirror lists with MLSD:\n{log}");
    assert_same_tree(&work.join("copy"), &server.root.join("tree"));
    assert!(!work.join("copy/elsewhere.txt").exists());
    server.assert_no_open_slots();
}

#[test]
fn lftp_reverse_mirror_uploads_tree() {
    if !require("lftp") {
        return;
    }
    let (server, _users) = users_server("lftp-mirror-r");
    let work = workdir("lftp-mirror-r");
    write_tree(&work, "local");
    let (ok, stdout, log) = lftp(&server, Some(&alice_login()), "mirror -R local /uploaded", &work.path);
    assert!(ok, "lftp mirror -R failed:\n{stdout}\n{log}");
    assert!(has_line(&log, "---> MKD") && has_line(&log, "---> STOR"), "{log}");
    assert_same_tree(&server.root.join("uploaded"), &work.join("local"));
    server.assert_no_open_slots();
}

#[test]
fn lftp_pget_segmented_download() {
    if !require("lftp") {
        return;
    }
    let server = TestServer::start("lftp-pget");
    let content = random_bytes(8 * MIB, 83);
    server.root.write("big.bin", &content);
    let work = workdir("lftp-pget");
    // The rate limit (per connection) keeps the first connection from fetching the whole file
    // before the others have logged in, so the download really is split into segments.
    let (ok, stdout, log) = lftp(&server, None, "set net:limit-rate 2M; pget -n 4 /big.bin -o out.bin", &work.path);
    assert!(ok, "lftp pget failed:\n{stdout}\n{log}");
    let restarts: Vec<&str> =
        log.lines().filter(|l| l.starts_with("---> REST ") && !l.ends_with(" 0") && l != &"---> REST STREAM").collect();
    assert!(!restarts.is_empty(), "pget fetched segments with REST:\n{log}");
    assert_same(&work.read("out.bin"), &content, "lftp pget");
    // lftp drops the data connections of finished segments early; the server carries on.
    let mut raw = Raw::anonymous(server.addr);
    raw.expect_cmd("SIZE big.bin", 213);
    raw.expect_cmd("QUIT", 221);
    drop(raw);
    server.assert_no_open_slots();
}

#[test]
fn lftp_get_continue_resumes_partial_download() {
    if !require("lftp") {
        return;
    }
    let server = TestServer::start("lftp-continue");
    let content = random_bytes(3 * MIB + 11, 84);
    server.root.write("big.bin", &content);
    let work = workdir("lftp-continue");
    work.write("big.bin", &content[..MIB + 1]);
    let (ok, stdout, log) = lftp(&server, None, "get -c big.bin", &work.path);
    assert!(ok, "lftp get -c failed:\n{stdout}\n{log}");
    assert!(has_line(&log, &format!("---> REST {}", MIB + 1)), "{log}");
    assert_same(&work.read("big.bin"), &content, "lftp get -c");
    server.assert_no_open_slots();
}

#[test]
fn lftp_active_mode_ls_get_put() {
    if !require("lftp") {
        return;
    }
    let (server, _users) = users_server("lftp-active");
    let content = random_bytes(2 * MIB + 13, 85);
    let upload = random_bytes(MIB + 17, 86);
    server.root.write("big.bin", &content);
    let work = workdir("lftp-active");
    work.write("up.bin", &upload);
    let commands = "set ftp:passive-mode off; ls; get big.bin; put up.bin";
    let (ok, stdout, log) = lftp(&server, Some(&alice_login()), commands, &work.path);
    assert!(ok, "lftp active mode failed:\n{stdout}\n{log}");
    assert!(has_line(&log, "---> PORT ") || has_line(&log, "---> EPRT "), "{log}");
    assert!(!has_line(&log, "---> PASV") && !has_line(&log, "---> EPSV"), "{log}");
    assert!(stdout.lines().any(|l| l.ends_with(" big.bin")), "ls:\n{stdout}");
    assert_same(&work.read("big.bin"), &content, "lftp active get");
    assert_same(&server.root.read("up.bin"), &upload, "lftp active put");
    server.assert_no_open_slots();
}

// ---------------------------------------------------------------------------------------------
// ncftp (ncftpls, ncftpget, ncftpput)
// ---------------------------------------------------------------------------------------------

/// Runs an ncftp tool with a debug log in `cwd/debug.log`; returns (success, stdout, log).
fn ncftp(program: &str, args: &[&str], cwd: &Path) -> (bool, String, String) {
    let _ = std::fs::remove_file(cwd.join("debug.log"));
    let mut all = vec!["-d", "debug.log", "-t", "20"];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = run(program, &all, b"", cwd);
    let log = std::fs::read_to_string(cwd.join("debug.log")).unwrap_or_default();
    (ok, stdout, format!("{log}\n{stderr}"))
}

/// Whether an ncftp debug log shows the command `cmd` (lines look like `<date> <time>  Cmd: CWD x`).
fn ncftp_sent(log: &str, cmd: &str) -> bool {
    log.lines().any(|l| l.split_once("Cmd: ").is_some_and(|(_, sent)| sent.starts_with(cmd)))
}

#[test]
fn ncftpls_names_long_and_subdirectory() {
    if !require("ncftpls") {
        return;
    }
    let server = TestServer::start("ncftpls");
    server.root.write("one.txt", b"1\n");
    server.root.write("two.bin", &random_bytes(1234, 91));
    server.root.write("sub dir/inner.txt", b"inner\n");
    let work = workdir("ncftpls");
    let port = port_arg(&server);
    let root_url = "ftp://127.0.0.1/";

    let (ok, names, log) = ncftp("ncftpls", &["-P", &port, root_url], &work.path);
    assert!(ok, "ncftpls failed:\n{log}");
    assert_eq!(sorted_lines(&names), ["one.txt", "sub dir", "two.bin"], "{log}");

    let (ok, long, log) = ncftp("ncftpls", &["-l", "-P", &port, root_url], &work.path);
    assert!(ok, "ncftpls -l failed:\n{log}");
    let lines: Vec<&str> = long.lines().collect();
    assert_eq!(lines.len(), 3, "{long}");
    assert!(lines.iter().any(|l| l.starts_with('d') && l.ends_with(" sub dir")), "{long}");
    assert!(lines.iter().any(|l| l.starts_with('-') && l.split_whitespace().nth(4) == Some("1234")), "{long}");

    let (ok, inner, log) = ncftp("ncftpls", &["-P", &port, "ftp://127.0.0.1/sub%20dir/"], &work.path);
    assert!(ok, "ncftpls of a subdirectory failed:\n{log}");
    assert!(ncftp_sent(&log, "CWD sub dir") || ncftp_sent(&log, "CWD /sub dir"), "{log}");
    assert_eq!(sorted_lines(&inner), ["inner.txt"], "{log}");
    server.assert_no_open_slots();
}

#[test]
fn ncftpget_downloads_file() {
    if !require("ncftpget") {
        return;
    }
    let server = TestServer::start("ncftpget");
    let content = random_bytes(5 * MIB + 3, 92);
    server.root.write("pub/big file.bin", &content);
    let work = workdir("ncftpget");
    std::fs::create_dir(work.join("dl")).unwrap();
    let args = ["-V", "-P", &port_arg(&server), "127.0.0.1", "dl", "/pub/big file.bin"];
    let (ok, _, log) = ncftp("ncftpget", &args, &work.path);
    assert!(ok, "ncftpget failed:\n{log}");
    assert_same(&work.read("dl/big file.bin"), &content, "ncftpget");
    assert!(ncftp_sent(&log, "RETR ") && ncftp_sent(&log, "QUIT"), "{log}");
    server.assert_no_open_slots();
}

#[test]
fn ncftpget_resumes_partial_download() {
    if !require("ncftpget") {
        return;
    }
    let server = TestServer::start("ncftpget-resume");
    let content = random_bytes(4 * MIB + 1, 93);
    server.root.write("big.bin", &content);
    let work = workdir("ncftpget-resume");
    work.write("dl/big.bin", &content[..1_234_567]);
    let args = ["-V", "-z", "-P", &port_arg(&server), "127.0.0.1", "dl", "/big.bin"];
    let (ok, _, log) = ncftp("ncftpget", &args, &work.path);
    assert!(ok, "ncftpget -z failed:\n{log}");
    assert!(ncftp_sent(&log, "REST 1234567"), "{log}");
    assert_same(&work.read("dl/big.bin"), &content, "ncftpget resumed");
    server.assert_no_open_slots();
}

#[test]
fn ncftpget_active_mode() {
    if !require("ncftpget") {
        return;
    }
    let server = TestServer::start("ncftpget-active");
    let content = random_bytes(2 * MIB + 9, 94);
    server.root.write("big.bin", &content);
    let work = workdir("ncftpget-active");
    std::fs::create_dir(work.join("dl")).unwrap();
    let args = ["-V", "-E", "-P", &port_arg(&server), "127.0.0.1", "dl", "/big.bin"];
    let (ok, _, log) = ncftp("ncftpget", &args, &work.path);
    assert!(ok, "ncftpget -E failed:\n{log}");
    assert!(ncftp_sent(&log, "PORT ") || ncftp_sent(&log, "EPRT "), "{log}");
    assert!(!ncftp_sent(&log, "PASV") && !ncftp_sent(&log, "EPSV"), "{log}");
    assert_same(&work.read("dl/big.bin"), &content, "ncftpget active");
    server.assert_no_open_slots();
}

#[test]
fn ncftpget_recursive_tree() {
    if !require("ncftpget") {
        return;
    }
    let server = TestServer::start("ncftpget-r");
    write_tree(&server.root, "tree");
    server.root.write("elsewhere.txt", b"not part of the copy\n");
    let work = workdir("ncftpget-r");
    std::fs::create_dir(work.join("dl")).unwrap();
    let args = ["-V", "-R", "-T", "-P", &port_arg(&server), "127.0.0.1", "dl", "/tree"];
    let (ok, _, log) = ncftp("ncftpget", &args, &work.path);
    assert!(ok, "ncftpget -R failed:\n{log}");
    assert_same_tree(&work.join("dl/tree"), &server.root.join("tree"));
    server.assert_no_open_slots();
}

#[test]
fn ncftpput_uploads_as_rw_user() {
    if !require("ncftpput") {
        return;
    }
    let (server, _users) = users_server("ncftpput");
    std::fs::create_dir_all(server.root.join("incoming/sub")).unwrap();
    let content = random_bytes(3 * MIB + 21, 95);
    let work = workdir("ncftpput");
    work.write("local.bin", &content);
    let port = port_arg(&server);
    let args = ["-V", "-u", "alice", "-p", ALICE_PW, "-P", &port, "127.0.0.1", "/incoming/sub", "local.bin"];
    let (ok, _, log) = ncftp("ncftpput", &args, &work.path);
    assert!(ok, "ncftpput failed:\n{log}");
    assert!(ncftp_sent(&log, "USER alice") && ncftp_sent(&log, "STOR "), "{log}");
    assert_same(&server.root.read("incoming/sub/local.bin"), &content, "ncftpput");
    // bob is read-only and a wrong password is a wrong password: both fail, nothing written.
    let args = ["-V", "-u", "bob", "-p", BOB_PW, "-P", &port, "127.0.0.1", "/incoming", "local.bin"];
    assert!(!ncftp("ncftpput", &args, &work.path).0, "a read-only user's upload must fail");
    let args = ["-V", "-u", "alice", "-p", "wrong", "-P", &port, "127.0.0.1", "/incoming", "local.bin"];
    assert!(!ncftp("ncftpput", &args, &work.path).0, "a wrong password must fail");
    assert!(!server.root.join("incoming/local.bin").exists());
    server.assert_no_open_slots();
}

// ---------------------------------------------------------------------------------------------
// The client matrix in README.md
// ---------------------------------------------------------------------------------------------

const MATRIX_START: &str = "<!-- client-matrix:start -->\n";
const MATRIX_END: &str = "<!-- client-matrix:end -->";

fn render_matrix() -> String {
    let mut table = format!("| client | {} |\n", MATRIX_OPERATIONS.join(" | "));
    table.push_str(&format!("| --- |{}\n", " :-: |".repeat(MATRIX_OPERATIONS.len())));
    for client in MATRIX_CLIENTS {
        let cells: Vec<&str> = MATRIX_OPERATIONS
            .iter()
            .map(|op| if MATRIX.iter().any(|(c, o, _)| c == client && o == op) { "✓" } else { "—" })
            .collect();
        table.push_str(&format!("| {client} | {} |\n", cells.join(" | ")));
    }
    table
}

#[test]
fn readme_client_matrix_is_generated_from_these_tests() {
    let source = include_str!("clients.rs");
    for (i, (client, op, test)) in MATRIX.iter().enumerate() {
        assert!(MATRIX_CLIENTS.contains(client), "MATRIX: unknown client {client:?}");
        assert!(MATRIX_OPERATIONS.contains(op), "MATRIX: unknown operation {op:?}");
        assert!(!MATRIX[..i].contains(&(client, op, test)), "MATRIX: duplicate entry {client} / {op} / {test}");
        let needle = format!("\nfn {test}() {{");
        let at = source.find(&needle).unwrap_or_else(|| panic!("MATRIX names {test}, but there is no fn {test}()"));
        // The attributes right above the function: it must be a test, and not an ignored one.
        let attributes: Vec<&str> =
            source[..at].lines().rev().take_while(|l| l.trim_start().starts_with("#[") || l.starts_with(' ')).collect();
        assert!(attributes.iter().any(|a| a.trim() == "#[test]"), "MATRIX names {test}, which is not a #[test]");
        assert!(!attributes.iter().any(|a| a.contains("#[ignore")), "MATRIX names {test}, which is #[ignore]d");
    }

    let table = render_matrix();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme.find(MATRIX_START).expect("README.md has no client-matrix:start marker") + MATRIX_START.len();
    let end = start + readme[start..].find(MATRIX_END).expect("README.md has no client-matrix:end marker");
    if std::env::var("UPDATE_README").as_deref() == Ok("1") {
        let updated = format!("{}{table}{}", &readme[..start], &readme[end..]);
        if updated != readme {
            std::fs::write(&path, updated).unwrap();
        }
    } else {
        assert!(
            readme[start..end] == table,
            "the client matrix in README.md is stale; run `UPDATE_README=1 cargo test --test clients readme`.\n\
             expected:\n{table}\nfound:\n{}",
            &readme[start..end]
        );
    }
}
