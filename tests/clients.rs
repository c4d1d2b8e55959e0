//! Real FTP client programs against the real server: python3 ftplib, curl, tnftp, inetutils-ftp
//! and wget. Each test starts its own server, drives one client through a scenario and checks
//! the bytes that ended up on either side and the client's exit status.

mod common;
use common::*;
use std::path::PathBuf;

const MIB: usize = 1024 * 1024;
const ALICE_PW: &str = "alice-pw";
const BOB_PW: &str = "bob-pw";

/// A server with a users file (alice rw, bob ro) and no anonymous access. The second value
/// holds the users file and must outlive the server.
fn users_server(label: &str) -> (TestServer, TempRoot) {
    let users = TempRoot::new(&format!("{label}-users"));
    let alice = mioftpd::auth::hash_password(ALICE_PW).unwrap();
    let bob = mioftpd::auth::hash_password(BOB_PW).unwrap();
    std::fs::write(users.join("users"), format!("alice:{alice}:rw\nbob:{bob}:ro\n")).unwrap();
    let server = TestServer::start_with(label, |cfg| {
        cfg.users = Some(users.join("users"));
        cfg.anonymous = false;
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
