//! The full command set (RFC 959, 2389, 2428, 3659, 2640 and common extensions) over a real
//! socket, checked against files on disk.

mod common;
use common::*;
use std::io::{Read, Write};

#[test]
fn feat_lists_exactly_the_extensions() {
    let server = TestServer::start("feat-exact");
    let mut c = Raw::connect(server.addr);
    let text = c.expect_cmd("FEAT", 211);
    let features: Vec<&str> = text.lines().skip(1).filter(|l| l.starts_with(' ')).map(str::trim).collect();
    assert_eq!(
        features,
        [
            "EPRT",
            "EPSV",
            "MDTM",
            "MFMT",
            "MLST type*;size*;modify*;perm*;unique*;unix.mode*;",
            "PASV",
            "REST STREAM",
            "SIZE",
            "TVFS",
            "UTF8"
        ]
    );
    assert_eq!(c.cmd("OPTS UTF8 ON").0, 200);
    c.login("anonymous", "x");
    assert_eq!(c.cmd("OPTS MLST type;size;").1, "MLST OPTS type;size;");
    assert!(c.cmd("FEAT").1.contains("MLST type*;size*;modify;perm;unique;unix.mode;"));
}

#[test]
fn rest_resumes_downloads() {
    let server = TestServer::start("rest-retr");
    let content = random_bytes(3_000_000, 2);
    server.root.write("f.bin", &content);
    let mut c = Raw::anonymous(server.addr);
    c.expect_cmd("TYPE I", 200);
    assert_eq!(c.cmd("REST 1000000").0, 350);
    assert!(c.download("RETR f.bin") == content[1_000_000..]);
    assert!(c.download("RETR f.bin") == content, "REST applies to one transfer only");
    c.expect_cmd(&format!("REST {}", content.len()), 350);
    assert!(c.download("RETR f.bin").is_empty());
}

#[test]
fn rest_stor_and_appe_resume_uploads() {
    let server = TestServer::with_users("rest-stor");
    let content = random_bytes(2_000_000, 3);
    let mut c = server.login("alice");
    c.expect_cmd("TYPE I", 200);
    // An upload that broke off after 700 000 bytes…
    server.root.write("up.bin", &content[..700_000]);
    c.expect_cmd("REST 700000", 350);
    c.upload("STOR up.bin", &content[700_000..1_500_000]);
    assert!(server.root.read("up.bin") == content[..1_500_000]);
    c.upload("APPE up.bin", &content[1_500_000..]);
    assert!(server.root.read("up.bin") == content);
    c.upload("APPE new.bin", b"fresh");
    assert_eq!(server.root.read("new.bin"), b"fresh");
    c.expect_cmd("REST 999999999", 350);
    let _data = c.epsv();
    assert_eq!(c.cmd("STOR up.bin").0, 554, "restart beyond the end of the file");
}

#[test]
fn stou_never_overwrites() {
    let server = TestServer::with_users("stou");
    server.root.write("report.txt", b"original");
    let mut c = server.login("alice");
    let mut data = c.epsv();
    c.send("STOU report.txt");
    let (code, text) = c.reply();
    assert_eq!((code, text.as_str()), (150, "FILE: report.txt.1"), "one preliminary reply, naming the file");
    data.write_all(b"second").unwrap();
    drop(data);
    c.expect(226);
    assert_eq!(server.root.read("report.txt"), b"original");
    assert_eq!(server.root.read("report.txt.1"), b"second");
}

#[test]
fn rename_with_rnfr_rnto() {
    let server = TestServer::with_users("rename");
    server.root.write("old name.txt", b"x");
    let mut c = server.login("alice");
    assert_eq!(c.cmd("RNTO x").0, 503);
    c.expect_cmd("RNFR old name.txt", 350);
    c.expect_cmd("RNTO new name.txt", 250);
    assert!(server.root.join("new name.txt").exists() && !server.root.join("old name.txt").exists());
    c.expect_cmd("RNFR new name.txt", 350);
    c.expect_cmd("NOOP", 200);
    assert_eq!(c.cmd("RNTO other.txt").0, 503, "RNTO must follow RNFR directly");
    assert_eq!(c.cmd("RNFR missing").0, 550);
    let mut anon = Raw::anonymous(server.addr);
    assert_eq!(anon.cmd("RNFR new name.txt").0, 550, "anonymous is read-only");
}

#[test]
fn abor_during_a_transfer_replies_426_then_226() {
    let server = TestServer::start("abor");
    server.root.write("huge.bin", &random_bytes(64 * 1024 * 1024, 4));
    let mut c = Raw::anonymous(server.addr);
    let mut data = c.epsv();
    c.expect_cmd("RETR huge.bin", 150);
    let mut first = [0u8; 4096];
    data.read_exact(&mut first).unwrap();
    // tnftp's way: Telnet IP and DM before the command.
    c.send_bytes(b"\xff\xf4\xff\xf2ABOR\r\n");
    assert_eq!(c.reply().0, 426);
    assert_eq!(c.reply().0, 226);
    let mut rest = Vec::new();
    let _ = data.read_to_end(&mut rest); // the server closed it (EOF or reset)
    assert!(rest.len() < 60 * 1024 * 1024, "the transfer stopped");
    assert_eq!(c.cmd("NOOP").0, 200);
    assert_eq!(c.cmd("ABOR").0, 226, "nothing to abort");
    assert_eq!(c.download("RETR huge.bin").len(), 64 * 1024 * 1024, "the session goes on");
}

#[test]
fn stat_reports_status_and_lists_over_the_control_connection() {
    let server = TestServer::start("stat");
    server.root.write("d/a.txt", b"abc");
    let mut c = Raw::anonymous(server.addr);
    let status = c.expect_cmd("STAT", 211);
    assert!(status.contains("Logged in as anonymous"), "{status}");
    let listing = c.expect_cmd("STAT d", 213);
    assert!(listing.lines().any(|l| l.starts_with(" -rw") && l.ends_with(" a.txt")), "{listing}");
    assert_eq!(c.cmd("STAT nope").0, 550);
}

#[test]
fn help_site_acct_allo_smnt_rein() {
    let server = TestServer::with_users("misc");
    server.root.write("f.txt", b"x");
    let mut c = server.login("alice");
    assert!(c.expect_cmd("HELP", 214).contains("RETR"));
    assert_eq!(c.cmd("HELP retr").1, "Syntax: RETR <path>");
    assert_eq!(c.cmd("HELP BOGUS").0, 502);
    assert_eq!(c.cmd("ACCT x").0, 202);
    assert_eq!(c.cmd("ALLO 100").0, 202);
    assert_eq!(c.cmd("SMNT /").0, 502);
    assert_eq!(c.cmd("SITE HELP").0, 214);
    c.expect_cmd("SITE CHMOD 600 f.txt", 200);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(server.root.join("f.txt")).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(c.cmd("SITE CHMOD 999 f.txt").0, 501);
    assert_eq!(c.cmd("SITE FROB").0, 504);
    c.expect_cmd("CWD /", 250);
    assert_eq!(c.cmd("REIN").0, 220);
    assert_eq!(c.cmd("PWD").0, 530, "REIN logs out");
    c.login("anonymous", "x");
    assert_eq!(c.cmd("SITE CHMOD 644 f.txt").0, 550);
}

#[test]
fn mlsd_and_mlst_facts() {
    let server = TestServer::with_users("mlsd");
    server.root.write("sub/file.txt", b"12345");
    std::fs::create_dir(server.root.join("sub/inner")).unwrap();
    let mut c = server.login("alice");
    let text = String::from_utf8(c.download("MLSD sub")).unwrap();
    let mut entries: Vec<(&str, &str)> = text.split_terminator("\r\n").map(|l| l.split_once(' ').unwrap()).collect();
    entries.sort_by_key(|(_, name)| *name);
    let names: Vec<&str> = entries.iter().map(|(_, n)| *n).collect();
    assert_eq!(names, [".", "..", "file.txt", "inner"]);
    let facts = |i: usize| entries[i].0;
    assert!(facts(0).starts_with("type=cdir;") && facts(1).starts_with("type=pdir;"));
    assert!(facts(2).starts_with("type=file;size=5;modify=") && facts(2).contains("perm=adfrw;"), "{}", facts(2));
    assert!(facts(2).contains("unique=") && facts(2).contains("unix.mode=0"));
    assert!(facts(3).starts_with("type=dir;") && !facts(3).contains("size="));
    let root_listing = String::from_utf8(c.download("MLSD")).unwrap();
    assert!(!root_listing.contains("type=pdir"), "the root has no visible parent: {root_listing}");

    let mlst = c.expect_cmd("MLST sub/file.txt", 250);
    let lines: Vec<&str> = mlst.lines().collect();
    assert_eq!(lines.len(), 3, "{mlst}");
    assert!(lines[1].starts_with(" type=file;size=5;") && lines[1].ends_with("; /sub/file.txt"), "{mlst}");
    let _data = c.epsv();
    assert_eq!(c.cmd("MLSD sub/file.txt").0, 501);

    let mut anon = Raw::anonymous(server.addr);
    let text = String::from_utf8(anon.download("MLSD sub")).unwrap();
    assert!(text.contains("perm=r;") && text.contains("perm=el;"), "read-only perms: {text}");
}

#[test]
fn mfmt_sets_modification_time() {
    let server = TestServer::with_users("mfmt");
    server.root.write("f", b"x");
    let mut c = server.login("alice");
    assert_eq!(c.cmd("MFMT 20010909014640 f"), (213, "Modify=20010909014640; f".to_string()));
    assert_eq!(c.cmd("MDTM f").1, "20010909014640");
    assert_eq!(c.cmd("MFMT 2001 f").0, 501);
    assert_eq!(c.cmd("MFMT 20010909014640 missing").0, 550);
}

#[test]
fn utf8_spaces_dashes_and_non_utf8_names() {
    let server = TestServer::with_users("names");
    let mut c = server.login("alice");
    for name in ["grüße 日本.txt", "with  two spaces", "-leading-dash", " leading space"] {
        c.upload(&format!("STOR {name}"), name.as_bytes());
        assert_eq!(server.root.read(name), name.as_bytes());
        assert_eq!(c.download(&format!("RETR {name}")), name.as_bytes());
    }
    // A Latin-1 name that is not valid UTF-8 still round-trips as bytes.
    let latin1 = b"caf\xe9.txt";
    let mut data = c.epsv();
    c.send_bytes(&[b"STOR ".as_slice(), latin1, b"\r\n"].concat());
    c.expect(150);
    data.write_all(b"bytes").unwrap();
    drop(data);
    c.expect(226);
    use std::os::unix::ffi::OsStrExt;
    let on_disk = server.root.path.join(std::ffi::OsStr::from_bytes(latin1));
    assert_eq!(std::fs::read(on_disk).unwrap(), b"bytes");
    let names = c.download("NLST");
    assert!(names.windows(latin1.len()).any(|w| w == latin1), "NLST returns the raw bytes");
}

#[test]
fn ipv6_control_and_data_connections() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIP: no IPv6 loopback");
        return;
    }
    let server = TestServer::start_with("ipv6", |cfg| cfg.listen = "[::1]:0".parse().unwrap());
    server.root.write("six.txt", b"over ipv6");
    let mut c = Raw::anonymous(server.addr);
    assert_eq!(c.download("RETR six.txt"), b"over ipv6");
    assert_eq!(c.cmd("PASV").0, 425, "PASV cannot express an IPv6 address");
    let listener = std::net::TcpListener::bind("[::1]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    c.expect_cmd(&format!("EPRT |2|::1|{port}|"), 200);
    c.expect_cmd("RETR six.txt", 150);
    let (mut data, _) = listener.accept().unwrap();
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.expect(226);
    assert_eq!(got, b"over ipv6");
}

#[test]
fn a_huge_directory_streams_while_others_transfer() {
    let server = TestServer::start("hugedir");
    let dir = server.root.join("many");
    std::fs::create_dir(&dir).unwrap();
    for i in 0..100_000 {
        std::fs::File::create(dir.join(format!("entry-{i:06}"))).unwrap();
    }
    let content = random_bytes(8 * 1024 * 1024, 8);
    server.root.write("f.bin", &content);
    let addr = server.addr;
    let lister = std::thread::spawn(move || {
        let mut c = Raw::anonymous(addr);
        let names = c.download("NLST many");
        let long = c.download("LIST many");
        let machine = c.download("MLSD many");
        (names, long, machine)
    });
    let mut other = Raw::anonymous(server.addr);
    for _ in 0..3 {
        assert!(other.download("RETR f.bin") == content);
    }
    let (names, long, machine) = lister.join().unwrap();
    assert_eq!(names.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count(), 100_000);
    assert_eq!(long.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count(), 100_000);
    assert_eq!(machine.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count(), 100_002, "plus cdir and pdir");
}

#[test]
fn nlst_and_list_expand_wildcards() {
    let server = TestServer::start("glob");
    for name in ["a.txt", "b.txt", "c.bin", ".hidden.txt", "sub/d.txt", "sub/e.bin"] {
        server.root.write(name, b"x");
    }
    let mut c = Raw::anonymous(server.addr);
    let sorted = |bytes: Vec<u8>| {
        let mut lines: Vec<String> =
            String::from_utf8(bytes).unwrap().split_terminator("\r\n").map(String::from).collect();
        lines.sort();
        lines
    };
    assert_eq!(sorted(c.download("NLST *.txt")), ["a.txt", "b.txt"]);
    assert_eq!(sorted(c.download("NLST sub/*.txt")), ["sub/d.txt"]);
    assert_eq!(sorted(c.download("NLST sub/*.txt/")), ["sub/d.txt"], "a trailing slash names the same pattern");
    assert_eq!(sorted(c.download("NLST ?.bin")), ["c.bin"]);
    let long = sorted(c.download("LIST *.bin"));
    assert!(long.len() == 1 && long[0].ends_with(" c.bin"), "{long:?}");
    assert!(c.download("NLST *.none").is_empty());
}
