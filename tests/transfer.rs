//! Data transfers over real sockets: byte-exact RETR/STOR, both passive orders, active mode,
//! ASCII conversion across chunk edges, listings, and uploads that never damage a file.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

#[test]
fn multi_mib_retr_is_byte_exact() {
    // Both download paths: sendfile (the default) and the 64 KiB buffer (`--no-sendfile`).
    for no_zero_copy in [false, true] {
        let server = TestServer::start_with("retr", |cfg| cfg.no_zero_copy = no_zero_copy);
        let content = random_bytes(9 * 1024 * 1024 + 123, 7);
        server.root.write("big.bin", &content);
        let mut c = Raw::anonymous(server.addr);
        c.expect_cmd("TYPE I", 200);
        assert_eq!(c.cmd("SIZE big.bin").1, content.len().to_string());
        assert!(c.download("RETR big.bin") == content, "download differs (no_zero_copy: {no_zero_copy})");
        c.expect_cmd("REST 5000001", 350);
        assert!(c.download("RETR big.bin") == content[5_000_001..], "resumed download (no_zero_copy: {no_zero_copy})");
        server.root.write("empty", b"");
        assert!(c.download("RETR empty").is_empty());
    }
}

#[test]
fn passive_works_when_the_command_comes_before_the_connection() {
    let server = TestServer::start("order");
    let content = random_bytes(300_000, 3);
    server.root.write("f.bin", &content);
    let mut c = Raw::anonymous(server.addr);
    let text = c.expect_cmd("EPSV", 229);
    let port: u16 = text.split('|').nth(3).unwrap().parse().unwrap();
    c.expect_cmd("RETR f.bin", 150);
    let mut data = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.expect(226);
    assert!(got == content);
}

#[test]
fn pasv_advertises_a_reachable_ipv4_address() {
    let server = TestServer::start("pasv");
    server.root.write("f.txt", b"pasv data");
    let mut c = Raw::anonymous(server.addr);
    let addr = c.pasv();
    assert_eq!(addr.ip(), server.addr.ip());
    let mut data = TcpStream::connect(addr).unwrap();
    c.expect_cmd("RETR f.txt", 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.expect(226);
    assert_eq!(got, b"pasv data");
}

#[test]
fn pasv_address_and_port_range_are_honoured() {
    let server = TestServer::start_with("pasvcfg", |cfg| {
        cfg.pasv_address = Some("203.0.113.9".parse().unwrap());
        cfg.pasv_ports = Some(47100..=47110);
    });
    let mut c = Raw::anonymous(server.addr);
    for _ in 0..3 {
        let addr = c.pasv();
        assert_eq!(addr.ip().to_string(), "203.0.113.9");
        assert!((47100..=47110).contains(&addr.port()), "{addr}");
    }
}

fn active_download(c: &mut Raw, verb: &str, file: &str) -> Vec<u8> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cmd = match verb {
        "PORT" => format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff),
        _ => format!("EPRT |1|127.0.0.1|{port}|"),
    };
    c.expect_cmd(&cmd, 200);
    c.expect_cmd(&format!("RETR {file}"), 150);
    let (mut data, _) = listener.accept().unwrap();
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.expect(226);
    got
}

#[test]
fn active_mode_with_port_and_eprt() {
    let server = TestServer::start("active");
    let content = random_bytes(2 * 1024 * 1024, 11);
    server.root.write("a.bin", &content);
    let mut c = Raw::anonymous(server.addr);
    assert!(active_download(&mut c, "PORT", "a.bin") == content);
    assert!(active_download(&mut c, "EPRT", "a.bin") == content);
}

#[test]
fn active_mode_to_a_closed_port_gets_425() {
    let server = TestServer::start("active425");
    server.root.write("a.txt", b"x");
    let mut c = Raw::anonymous(server.addr);
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(); // closed again
    c.expect_cmd(&format!("EPRT |1|127.0.0.1|{port}|"), 200);
    c.expect_cmd("RETR a.txt", 150);
    c.expect(425);
    assert_eq!(c.cmd("NOOP").0, 200);
}

#[test]
fn port_to_another_host_or_a_privileged_port_is_refused() {
    let server = TestServer::start("bounce");
    let mut c = Raw::anonymous(server.addr);
    assert_eq!(c.cmd("PORT 127,0,0,2,100,0").0, 504);
    assert_eq!(c.cmd("EPRT |1|192.0.2.1|4000|").0, 504);
    assert_eq!(c.cmd("PORT 127,0,0,1,0,25").0, 504);
}

#[test]
fn passive_connection_from_a_foreign_address_is_refused() {
    let server = TestServer::start("foreign");
    server.root.write("f.txt", b"only for the owner");
    let mut c = Raw::anonymous(server.addr);
    let text = c.expect_cmd("EPSV", 229);
    let port: u16 = text.split('|').nth(3).unwrap().parse().unwrap();
    // Another loopback address stands in for a foreign host.
    let stranger = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    stranger.bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into()).unwrap();
    stranger.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into()).unwrap();
    let mut stranger: TcpStream = stranger.into();
    stranger.set_read_timeout(Some(PATIENCE)).unwrap();
    c.expect_cmd("RETR f.txt", 150);
    let mut data = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.expect(226);
    assert_eq!(got, b"only for the owner");
    let mut stolen = Vec::new();
    let _ = stranger.read_to_end(&mut stolen);
    assert!(stolen.is_empty(), "the stranger got data");
}

#[test]
fn ascii_mode_converts_line_endings_across_chunk_edges() {
    let server = TestServer::with_users("ascii");
    // Lines of varying length put LFs at every offset relative to the 64 KiB chunk edges.
    let mut text = Vec::new();
    for i in 0..40_000 {
        text.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, i % 13));
        text.push(b'\n');
    }
    server.root.write("unix.txt", &text);
    let crlf: Vec<u8> = text.iter().flat_map(|&b| if b == b'\n' { vec![b'\r', b'\n'] } else { vec![b] }).collect();
    let mut c = server.login("alice");
    c.expect_cmd("TYPE A", 200);
    assert!(c.download("RETR unix.txt") == crlf, "RETR in ASCII mode must send CRLF");
    c.upload("STOR back.txt", &crlf);
    assert!(server.root.read("back.txt") == text, "STOR in ASCII mode must store LF");
    c.expect_cmd("TYPE I", 200);
    assert!(c.download("RETR unix.txt") == text, "binary mode is untouched");
}

#[test]
fn stor_is_byte_exact_and_replaces_atomically() {
    // Both upload paths: splice (the default) and the 64 KiB buffer (`--no-zero-copy`).
    for no_zero_copy in [false, true] {
        let server = TestServer::with_users_and("stor", |cfg| cfg.no_zero_copy = no_zero_copy);
        let content = random_bytes(6 * 1024 * 1024 + 5, 5);
        server.root.write("target.bin", b"old content");
        let mut c = server.login("alice");
        c.expect_cmd("TYPE I", 200);
        c.upload("STOR target.bin", &content);
        assert!(server.root.read("target.bin") == content, "no_zero_copy: {no_zero_copy}");
        c.expect_cmd("REST 1000000", 350);
        c.upload("STOR target.bin", &content[1_000_000..2_000_000]);
        c.upload("APPE target.bin", b"tail");
        let expected = [&content[..2_000_000], b"tail"].concat();
        assert!(server.root.read("target.bin") == expected, "resumed upload, no_zero_copy: {no_zero_copy}");
        let names: Vec<_> = std::fs::read_dir(&server.root.path).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "no temporary files left behind: {names:?}");
    }
}

#[test]
fn interrupted_upload_leaves_the_old_file_and_no_debris() {
    let server = TestServer::with_users("storabort");
    server.root.write("keep.txt", b"precious");
    let mut c = server.login("alice");
    let mut data = c.epsv();
    c.expect_cmd("STOR keep.txt", 150);
    data.write_all(&random_bytes(1_000_000, 9)).unwrap();
    // The client's control connection vanishes mid-upload; the server drops the upload with it.
    drop(c);
    server.assert_no_open_slots();
    drop(data);
    assert!(server.root.read("keep.txt") == b"precious", "the old file was damaged");
    let names: Vec<_> = std::fs::read_dir(&server.root.path).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "debris left: {names:?}");
}

#[test]
fn read_only_users_cannot_write() {
    let server = TestServer::with_users("ro");
    server.root.write("f.txt", b"x");
    let mut c = server.login("bob");
    let _data = c.epsv();
    assert_eq!(c.cmd("STOR new.txt").0, 550);
    assert_eq!(c.cmd("MKD d").0, 550);
    assert_eq!(c.cmd("DELE f.txt").0, 550);
    assert_eq!(c.cmd("RMD /").0, 550);
    assert!(!server.root.join("new.txt").exists());
    assert!(server.root.join("f.txt").exists());
}

#[test]
fn mkd_rmd_dele_for_writers() {
    let server = TestServer::with_users("writes");
    let mut c = server.login("alice");
    assert_eq!(c.cmd("MKD new dir").1, "\"/new dir\" created.");
    c.expect_cmd("CWD new dir", 250);
    c.upload("STOR f.txt", b"hello");
    assert_eq!(server.root.read("new dir/f.txt"), b"hello");
    assert_eq!(c.cmd("RMD /new dir").0, 550, "not empty");
    c.expect_cmd("DELE f.txt", 250);
    c.expect_cmd("CDUP", 250);
    c.expect_cmd("XRMD new dir", 250);
    assert!(!server.root.join("new dir").exists());
    assert_eq!(c.cmd("MKD ../../escape").1, "\"/escape\" created.", "clamped at the root");
    assert!(server.root.join("escape").is_dir());
}

#[test]
fn list_and_nlst_formats() {
    let server = TestServer::start("list");
    server.root.write("a file.txt", b"12345");
    server.root.write("sub/inner", b"");
    let mut c = Raw::anonymous(server.addr);
    let listing = String::from_utf8(c.download("LIST")).unwrap();
    let mut lines: Vec<&str> = listing.split_terminator("\r\n").collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{listing:?}");
    let file: Vec<&str> = lines[0].split_whitespace().collect();
    assert!(file[0].starts_with("-rw"), "{}", lines[0]);
    assert_eq!(file[4], "5");
    assert!(lines[0].ends_with(" a file.txt"));
    assert!(lines[1].starts_with('d') && lines[1].ends_with(" sub"));

    let names = String::from_utf8(c.download("NLST")).unwrap();
    let mut names: Vec<&str> = names.split_terminator("\r\n").collect();
    names.sort();
    assert_eq!(names, ["a file.txt", "sub"]);
    assert_eq!(c.download("NLST sub"), b"sub/inner\r\n");
    assert_eq!(c.download("NLST -la sub"), b"sub/inner\r\n", "flags are not paths");
    let one = String::from_utf8(c.download("LIST -l a file.txt")).unwrap();
    assert!(one.starts_with("-rw") && one.ends_with(" a file.txt\r\n"), "{one}");
    let _data = c.epsv();
    assert_eq!(c.cmd("LIST missing").0, 550);
}

#[test]
fn mdtm_is_utc() {
    let server = TestServer::start("mdtm");
    server.root.write("f", b"");
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::options().write(true).open(server.root.join("f")).unwrap().set_modified(when).unwrap();
    let mut c = Raw::anonymous(server.addr);
    assert_eq!(c.cmd("MDTM f"), (213, "20010909014640".to_string()));
}

#[test]
fn client_leaving_mid_download_frees_everything() {
    let server = TestServer::start("leave");
    server.root.write("big.bin", &random_bytes(20 * 1024 * 1024, 1));
    for _ in 0..3 {
        let mut c = Raw::anonymous(server.addr);
        let mut data = c.epsv();
        c.expect_cmd("RETR big.bin", 150);
        let mut some = [0u8; 10_000];
        data.read_exact(&mut some).unwrap();
        drop(data);
        // The server notices the closed data connection when its writes fail: 426.
        assert_eq!(c.reply().0, 426);
        assert_eq!(c.cmd("NOOP").0, 200);
    }
    server.assert_no_open_slots();
}

#[test]
fn appe_and_rest_stor_do_not_follow_a_symlink_out_of_the_root() {
    let server = TestServer::with_users("appe-link");
    let outside = TempRoot::new("appe-outside");
    outside.write("target.txt", b"secret");
    std::os::unix::fs::symlink(outside.join("target.txt"), server.root.join("link")).unwrap();
    let mut c = server.login("alice");
    let _data = c.epsv();
    assert_eq!(c.cmd("APPE link").0, 550);
    c.expect_cmd("REST 3", 350);
    assert_eq!(c.cmd("STOR link").0, 550);
    assert_eq!(outside.read("target.txt"), b"secret");
}

#[test]
fn a_fifo_in_the_tree_does_not_freeze_the_server() {
    let server = TestServer::with_users("fifo");
    let fifo = server.root.join("pipe");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let mut c = server.login("alice");
    let _data = c.epsv();
    assert_eq!(c.cmd("RETR pipe").0, 550);
    assert!(c.cmd("APPE pipe").0 >= 450, "appending to a FIFO fails instead of blocking");
    let mut other = Raw::anonymous(server.addr);
    assert_eq!(other.cmd("NOOP").0, 200);
}
