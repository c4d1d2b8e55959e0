//! The servers compared, and how to start each with equivalent settings: its own 127.0.0.1
//! port and passive range, at least 20 000 sessions and no per-address limit, no transfer log,
//! sendfile where the server has it, one read-write account. The `-tls` kinds are the same
//! programs with explicit FTPS offered (not required) on one certificate, loaded by
//! `ftpbench --tls`.
//!
//! Peers are found where this machine has them (each path can be overridden by an environment
//! variable); one that is missing is skipped, one that fails to start or to log in is
//! reported and skipped.

use crate::fixture::{Certificate, USER, Workspace};
use crate::ftp;
use crate::procs::{self, Guard, run_tool};
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Mioftpd,
    MioftpdBuffered,
    MioftpdTls,
    Vsftpd,
    VsftpdTls,
    PureFtpd,
    Pyftpdlib,
    Unftp,
}

impl Kind {
    /// Also the order of the table's columns.
    pub const ALL: [Kind; 8] = [
        Kind::Mioftpd,
        Kind::MioftpdBuffered,
        Kind::MioftpdTls,
        Kind::Vsftpd,
        Kind::VsftpdTls,
        Kind::PureFtpd,
        Kind::Pyftpdlib,
        Kind::Unftp,
    ];

    /// The name used in `--servers`, in JSON and in log names.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mioftpd => "mioftpd",
            Kind::MioftpdBuffered => "mioftpd-buffered",
            Kind::MioftpdTls => "mioftpd-tls",
            Kind::Vsftpd => "vsftpd",
            Kind::VsftpdTls => "vsftpd-tls",
            Kind::PureFtpd => "pure-ftpd",
            Kind::Pyftpdlib => "pyftpdlib",
            Kind::Unftp => "unftp",
        }
    }

    /// The column heading: says where a server's login is cheaper than a crypt() check.
    pub fn column(self) -> &'static str {
        match self {
            Kind::MioftpdBuffered => "mioftpd (buffered)",
            Kind::MioftpdTls => "mioftpd (TLS)",
            Kind::VsftpdTls => "vsftpd (TLS)",
            Kind::Pyftpdlib => "pyftpdlib (plaintext pw)",
            Kind::Unftp => "unftp (plaintext pw)",
            other => other.name(),
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Another server, as opposed to mioftpd in one of its modes.
    pub fn is_peer(self) -> bool {
        !matches!(self, Kind::Mioftpd | Kind::MioftpdBuffered | Kind::MioftpdTls)
    }

    /// Loaded over FTPS (`ftpbench --tls`).
    pub fn tls(self) -> bool {
        matches!(self, Kind::MioftpdTls | Kind::VsftpdTls)
    }

    /// For a `-tls` kind, the same server in plain FTP.
    pub fn plain(self) -> Option<Kind> {
        match self {
            Kind::MioftpdTls => Some(Kind::Mioftpd),
            Kind::VsftpdTls => Some(Kind::Vsftpd),
            _ => None,
        }
    }

    /// Needs the system account (authenticates against /etc/shadow).
    pub fn needs_system_user(self) -> bool {
        matches!(self, Kind::Vsftpd | Kind::VsftpdTls | Kind::PureFtpd)
    }

    fn slot(self) -> u16 {
        Kind::ALL.iter().position(|&k| k == self).unwrap_or(0) as u16
    }

    /// This server's passive ports: 1000 of its own, below Linux's ephemeral range (32768+) so
    /// that no client socket holds one, and apart from the others' so that one server's
    /// TIME_WAIT sockets never crowd another's range.
    pub fn pasv_range(self) -> (u16, u16) {
        let first = 21000 + 1000 * self.slot();
        (first, first + 999)
    }
}

/// What every server is set up with.
pub struct Env<'a> {
    pub mioftpd: &'a Path,
    pub workspace: &'a Workspace,
    pub password: &'a str,
    /// The certificate and key (PEM) of the `-tls` kinds.
    pub certificate: &'a Certificate,
    /// `Err(why)` when the system account could not be set up.
    pub system_user: Result<(), String>,
    pub logs: &'a Path,
}

/// A server ready to be started (any number of times, each time fresh).
pub struct Server {
    pub kind: Kind,
    pub version: String,
    pub addr: SocketAddr,
    /// Settings worth recording next to the results.
    pub notes: Vec<String>,
    program: PathBuf,
    args: Vec<String>,
    /// Arguments for a server started only to hold idle sessions, where they must differ.
    idle_args: Option<Vec<String>>,
    env: Vec<(&'static str, String)>,
    log: PathBuf,
    password: String,
}

/// How long a server may take to listen after it was started.
const START_LIMIT: Duration = Duration::from_secs(15);

impl Server {
    /// Finds the program and writes its configuration. `Err` says why it is skipped.
    pub fn prepare(kind: Kind, env: &Env) -> Result<Server, String> {
        if kind.needs_system_user() {
            env.system_user.clone()?;
        }
        let port = free_port(2400 + 10 * kind.slot()).ok_or("no free control port")?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let (first, last) = kind.pasv_range();
        let log = env.logs.join(format!("{}.log", kind.name()));
        let mut server = Server {
            kind,
            version: String::new(),
            addr,
            notes: vec![format!("port {port}, passive ports {first}-{last}")],
            program: PathBuf::new(),
            args: Vec::new(),
            idle_args: None,
            env: Vec::new(),
            log,
            password: env.password.to_string(),
        };
        match kind {
            Kind::Mioftpd | Kind::MioftpdBuffered | Kind::MioftpdTls => server.mioftpd(env)?,
            Kind::Vsftpd | Kind::VsftpdTls => server.vsftpd(env)?,
            Kind::PureFtpd => server.pure_ftpd()?,
            Kind::Pyftpdlib => server.pyftpdlib(env)?,
            Kind::Unftp => server.unftp(env)?,
        }
        Ok(server)
    }

    fn mioftpd(&mut self, env: &Env) -> Result<(), String> {
        let users = env.workspace.etc.join("mioftpd-users");
        let program = path_str(env.mioftpd)?;
        run_tool(program, &["users", "add", path_str(&users)?, USER], Some(&format!("{}\n", env.password)))?;
        let line = fs::read_to_string(&users).map_err(|e| format!("{}: {e}", users.display()))?;
        if !line.starts_with(&format!("{USER}:$6$")) {
            return Err(format!("users add wrote no SHA-512-crypt line: {line:?}"));
        }
        let (first, last) = self.kind.pasv_range();
        self.program = env.mioftpd.to_path_buf();
        self.version = first_line(env.mioftpd, &["--version"]);
        #[rustfmt::skip]
        let args = [
            "--listen", &self.addr.to_string(), "--root", path_str(&env.workspace.root)?,
            "--users", path_str(&users)?, "--pasv-ports", &format!("{first}-{last}"),
            "--max-sessions", "20000", "--max-per-ip", "20000",
        ];
        self.args = args.iter().map(|s| s.to_string()).collect();
        if self.kind == Kind::MioftpdBuffered {
            self.args.push("--no-zero-copy".to_string());
            self.notes.push("--no-zero-copy: transfers through the 64 KiB buffer".to_string());
        }
        if self.kind == Kind::MioftpdTls {
            let (cert, key) = (path_str(&env.certificate.cert)?, path_str(&env.certificate.key)?);
            self.args.extend(["--tls-cert", cert, "--tls-key", key].map(String::from));
            self.notes.push(format!("--tls-cert/--tls-key: {}; data connections must resume", env.certificate.kind));
        }
        // Warnings only: info would log every transfer.
        self.env.push(("RUST_LOG", "warn".to_string()));
        self.notes.push("SHA-512-crypt users file; credential cache on (default)".to_string());
        Ok(())
    }

    fn vsftpd(&mut self, env: &Env) -> Result<(), String> {
        self.program = locate("VSFTPD", &["/usr/sbin/vsftpd"], "vsftpd").ok_or("not installed")?;
        if let Some(obstacle) = crate::fixture::SystemUser::pam_obstacle() {
            return Err(obstacle);
        }
        let (first, last) = self.kind.pasv_range();
        let root = path_str(&env.workspace.root)?;
        let config = format!(
            "# Generated by cargo bench --bench compare.\n\
             listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\nbackground=NO\n\
             anonymous_enable=NO\nlocal_enable=YES\nwrite_enable=YES\nlocal_umask=022\n\
             chroot_local_user=YES\nallow_writeable_chroot=YES\nlocal_root={root}\n\
             pasv_enable=YES\npasv_min_port={first}\npasv_max_port={last}\n\
             max_clients=0\nmax_per_ip=0\n\
             xferlog_enable=NO\nsyslog_enable=NO\ndual_log_enable=NO\n\
             use_sendfile=YES\ndirmessage_enable=NO\nconnect_from_port_20=NO\n\
             idle_session_timeout=600\ndata_connection_timeout=300\n\
             pam_service_name=vsftpd\nsecure_chroot_dir=/var/run/vsftpd/empty\n{tls}",
            port = self.addr.port(),
            tls = if self.kind == Kind::VsftpdTls { vsftpd_tls(env.certificate)? } else { String::new() },
        );
        // One file per kind: vsftpd and vsftpd-tls may run side by side.
        let path = env.workspace.etc.join(format!("{}.conf", self.kind.name()));
        fs::write(&path, config).map_err(|e| format!("{}: {e}", path.display()))?;
        // vsftpd refuses to start without its empty chroot directory.
        fs::create_dir_all("/var/run/vsftpd/empty").map_err(|e| format!("/var/run/vsftpd/empty: {e}"))?;
        self.args = vec![path_str(&path)?.to_string()];
        self.version = run_tool("dpkg-query", &["-W", "-f=${Version}", "vsftpd"], None)
            .map(|v| format!("vsftpd {v}"))
            .unwrap_or_else(|_| "vsftpd".to_string());
        self.notes.push(
            "PAM login (SHA-512-crypt in /etc/shadow), use_sendfile=YES, one process per session + privsep".into(),
        );
        if self.kind == Kind::VsftpdTls {
            self.notes.push(format!(
                "ssl_enable=YES, require_ssl_reuse=YES, ssl_ciphers=HIGH, {}; TLS offered, not forced",
                env.certificate.kind
            ));
        }
        Ok(())
    }

    fn pure_ftpd(&mut self) -> Result<(), String> {
        self.program = locate("PURE_FTPD", &["/opt/peers/pure/usr/sbin/pure-ftpd"], "pure-ftpd")
            .ok_or("not found (PURE_FTPD=/path, /opt/peers/pure/usr/sbin/pure-ftpd or PATH)")?;
        let (first, last) = self.kind.pasv_range();
        #[rustfmt::skip]
        let common = [
            "-S", &format!("127.0.0.1,{}", self.addr.port()), "-c", "20000", "-C", "20000",
            // unix: /etc/shadow; -E no anonymous; -A chroot everyone (to the home: the served
            // directory); -H no reverse DNS; -f none: no syslog.
            "-l", "unix", "-E", "-A", "-H", "-f", "none",
        ];
        let common: Vec<String> = common.iter().map(|s| s.to_string()).collect();
        self.args = [common.clone(), vec!["-p".to_string(), format!("{first}:{last}")]].concat();
        // pure-ftpd lowers -c to half its passive range (two ports per session, so it never
        // runs out of them): 1000 ports allow 500 sessions. The idle scenario opens no data
        // connection, so that server gets no range, and keeps its 20 000.
        self.idle_args = Some(common);
        self.version = first_line(&self.program, &["--help"]);
        self.notes.push("-l unix (SHA-512-crypt in /etc/shadow), no sendfile option; foreground, no syslog".into());
        self.notes.push("idle scenario: started without -p, which would cap it at 500 sessions".into());
        Ok(())
    }

    fn pyftpdlib(&mut self, env: &Env) -> Result<(), String> {
        let python = locate("PYTHON", &[], "python3").ok_or("python3 not found")?;
        // The interpreter itself, not a pyenv shim, so the pid probed is the server's; and
        // pyftpdlib's version, which also proves it is importable.
        let found = run_tool(
            path_str(&python)?,
            &["-c", "import sys, pyftpdlib; print(sys.executable); print(pyftpdlib.__ver__)"],
            None,
        )
        .map_err(|_| "not installed (python3 -m pip install pyftpdlib)".to_string())?;
        let mut lines = found.lines();
        let (Some(executable), Some(version)) = (lines.next(), lines.next()) else {
            return Err(format!("unexpected answer from python3: {found:?}"));
        };
        let (first, last) = self.kind.pasv_range();
        let script = format!(
            "# Generated by cargo bench --bench compare.\n\
             import logging\n\
             from pyftpdlib.authorizers import DummyAuthorizer\n\
             from pyftpdlib.handlers import FTPHandler\n\
             from pyftpdlib.servers import FTPServer\n\
             logging.basicConfig(level=logging.WARNING)\n\
             authorizer = DummyAuthorizer()\n\
             authorizer.add_user({user:?}, {password:?}, {root:?}, perm='elradfmwMT')\n\
             class Handler(FTPHandler):\n    pass\n\
             Handler.authorizer = authorizer\n\
             Handler.passive_ports = range({first}, {last} + 1)\n\
             Handler.use_sendfile = True\n\
             server = FTPServer(('127.0.0.1', {port}), Handler)\n\
             server.max_cons = 20000\n\
             server.max_cons_per_ip = 0\n\
             server.serve_forever()\n",
            user = USER,
            password = env.password,
            root = path_str(&env.workspace.root)?,
            port = self.addr.port(),
        );
        let path = env.workspace.etc.join("pyftpdlib_server.py");
        fs::write(&path, script).map_err(|e| format!("{}: {e}", path.display()))?;
        self.program = PathBuf::from(executable);
        self.args = vec![path_str(&path)?.to_string()];
        self.version = format!("pyftpdlib {version}");
        self.notes.push("DummyAuthorizer, plaintext password; use_sendfile=True; logging WARNING".into());
        Ok(())
    }

    fn unftp(&mut self, env: &Env) -> Result<(), String> {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".to_string());
        let default = format!("{home}/.cargo/bin/unftp");
        self.program = locate("UNFTP", &[default.as_str()], "unftp").ok_or("not found (UNFTP=/path or PATH)")?;
        let credentials = env.workspace.etc.join("unftp-users.json");
        let json = serde_json::json!([{ "username": USER, "password": env.password }]);
        fs::write(&credentials, json.to_string()).map_err(|e| format!("{}: {e}", credentials.display()))?;
        // Its metrics endpoint listens on 0.0.0.0:8080 unless told otherwise: keep it on
        // loopback, on a port of its own.
        let http = free_port(self.addr.port() + 1).ok_or("no free port for unftp's HTTP endpoint")?;
        let (first, last) = self.kind.pasv_range();
        #[rustfmt::skip]
        let args = [
            "--bind-address", &self.addr.to_string(), "--bind-address-http", &format!("127.0.0.1:{http}"),
            "--root-dir", path_str(&env.workspace.root)?, "--passive-ports", &format!("{first}-{last}"),
            "--auth-type", "json", "--auth-json-path", path_str(&credentials)?,
            "--log-level", "warn", "--idle-session-timeout", "600",
        ];
        self.args = args.iter().map(|s| s.to_string()).collect();
        self.version = first_line(&self.program, &["--version"]);
        self.notes.push(format!("JSON credentials, plaintext password; no sendfile option; HTTP on 127.0.0.1:{http}"));
        Ok(())
    }

    /// Starts a fresh instance and checks that the account can log in; `idle`: one that will
    /// only hold idle sessions. The guard ends it.
    pub fn start(&self, idle: bool) -> Result<Guard, String> {
        let mut command = Command::new(&self.program);
        command.args(if idle { self.idle_args.as_ref().unwrap_or(&self.args) } else { &self.args });
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let mut guard = Guard::spawn(self.kind.name(), &mut command, &self.log)?;
        let ready = ftp::wait_listening(self.addr, START_LIMIT, || guard.exited().is_none())
            .and_then(|()| ftp::check_login(self.addr, USER, &self.password).map_err(|e| format!("login: {e}")));
        if let Err(e) = ready {
            let _ = guard.stop();
            return Err(format!("{e}; last lines of {}:\n{}", self.log.display(), tail(&self.log, 5)));
        }
        Ok(guard)
    }

    pub fn command_line(&self) -> String {
        let mut line = self.env.iter().map(|(k, v)| format!("{k}={v} ")).collect::<String>();
        line.push_str(&self.program.display().to_string());
        for arg in &self.args {
            line.push(' ');
            line.push_str(arg);
        }
        line
    }
}

/// vsftpd's FTPS lines. TLS is offered and not forced, as mioftpd without `--require-tls`: the
/// start-up login check is plain FTP, ftpbench `--tls` always uses it. `ssl_ciphers` is
/// widened from vsftpd 3.0.3's default (DES-CBC3-SHA) to what a current client negotiates.
fn vsftpd_tls(certificate: &Certificate) -> Result<String, String> {
    Ok(format!(
        "ssl_enable=YES\nrsa_cert_file={cert}\nrsa_private_key_file={key}\nssl_ciphers=HIGH\n\
         require_ssl_reuse=YES\nssl_request_cert=NO\nforce_local_logins_ssl=NO\nforce_local_data_ssl=NO\n",
        cert = path_str(&certificate.cert)?,
        key = path_str(&certificate.key)?,
    ))
}

/// The first free 127.0.0.1 port from `preferred` on (50 tries). Free now; the server binds
/// it a moment later, which on a machine we share is the best one can do.
fn free_port(preferred: u16) -> Option<u16> {
    (preferred..preferred.saturating_add(50)).find(|&port| TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok())
}

/// `$VAR` if set, else the first of `candidates` that exists, else `name` on PATH.
fn locate(var: &str, candidates: &[&str], name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path));
    }
    let candidates = candidates.iter().map(PathBuf::from);
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).collect::<Vec<_>>())
        .unwrap_or_default();
    candidates.chain(on_path).find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The first non-empty line a program prints for `args` (on either stream, whatever its status).
fn first_line(program: &Path, args: &[&str]) -> String {
    let Ok(output) = Command::new(program).args(args).stdin(std::process::Stdio::null()).output() else {
        return "?".to_string();
    };
    let text = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    text.lines().map(str::trim).find(|line| !line.is_empty()).unwrap_or("?").to_string()
}

fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str().ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

/// The last `n` lines of a log, for an error message.
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].iter().map(|line| format!("    {line}\n")).collect()
}

/// Stops a running server, reporting (not failing on) a group that would not die.
pub fn stop(mut guard: Guard) {
    if let Err(e) = guard.stop() {
        eprintln!("compare: warning: {e}");
    }
    // Let the kernel finish closing its sockets before the next server binds.
    procs::sleep(Duration::from_millis(200));
}
