//! FTPS policy (RFC 4217): the certificate, the two rustls configurations, and the rule that a
//! data connection must resume its own control connection's TLS session.
//!
//! Nothing here touches a socket; `conn::transport` drives each `rustls::ServerConnection` by
//! hand on the loop's non-blocking sockets, so a TLS session is just more state in a slab slot.
//!
//! Why two configurations: control connections hand out TLS 1.3 session tickets, tagged with
//! their session's id (`set_resumption_data`); data connections resume one of them and hand out
//! none. A ticket sent on a data connection races with the client closing it after an upload,
//! and clients that lose that race lose the upload (seen with vsftpd and pyftpdlib). Both
//! configurations share one ticket key, so a ticket from the control connection opens the data
//! connection, and the tag read back from it proves *which* control connection it came from.
//! Tickets are stateless (encrypted with that key) rather than entries in a server-side cache,
//! because a client reuses one ticket for every data connection of a session, and rustls's
//! stateful TLS 1.3 tickets are single-use.

use crate::config::Config;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ProducesTickets, ServerConfig, ServerConnection};
use rustls::{HandshakeKind, ProtocolVersion};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Plaintext and TLS bytes rustls may buffer per connection in each direction: it bounds a TLS
/// session's memory the way our own `Buffer` bounds a plain one.
pub const BUFFER_LIMIT: usize = 64 * 1024;

/// Most TLS 1.3 tickets a control connection hands out when the client asks for more.
const MAX_TICKETS_ASKED: usize = 64;

/// The loaded certificate and the configurations built from it.
#[derive(Clone)]
pub struct Tls {
    control: Arc<ServerConfig>,
    data: Arc<ServerConfig>,
    /// Kept across certificate reloads, so tickets issued before a reload still resume.
    ticketer: Arc<dyn ProducesTickets>,
    /// Accept data connections that resume no session (stock Python `ftplib` does not).
    pub allow_unresumed_data: bool,
    /// Where the certificate and key came from, to read them again on `SIGHUP`.
    cert: PathBuf,
    key: PathBuf,
}

/// Why a certificate or key could not be used, naming the file.
#[derive(Debug)]
pub struct LoadError(String);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

impl Tls {
    /// The TLS settings of `config`: `None` when no certificate is configured; an error when
    /// the files cannot be used or TLS options come without a certificate.
    pub fn from_config(config: &Config) -> Result<Option<Tls>, LoadError> {
        match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Tls::load(cert, key, config.tls_allow_unresumed_data).map(Some),
            (None, None) if config.require_tls || config.implicit_tls.is_some() || config.tls_allow_unresumed_data => {
                Err(LoadError("TLS options need tls_cert and tls_key (--tls-cert, --tls-key)".into()))
            }
            (None, None) => Ok(None),
            _ => Err(LoadError("tls_cert and tls_key (--tls-cert, --tls-key) go together".into())),
        }
    }

    /// Loads a PEM certificate chain and its PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn load(cert: &Path, key: &Path, allow_unresumed_data: bool) -> Result<Tls, LoadError> {
        let ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| LoadError(format!("cannot set up TLS session tickets: {e}")))?;
        Tls::build(cert, key, ticketer, allow_unresumed_data)
    }

    /// The same settings with the certificate and key read again (`SIGHUP`); sessions already
    /// running keep theirs, and tickets issued before stay valid.
    pub fn reload(&self) -> Result<Tls, LoadError> {
        Tls::build(&self.cert, &self.key, self.ticketer.clone(), self.allow_unresumed_data)
    }

    /// The certificate file, for logs.
    pub fn cert_file(&self) -> &Path {
        &self.cert
    }

    fn build(
        cert: &Path,
        key: &Path,
        ticketer: Arc<dyn ProducesTickets>,
        allow_unresumed_data: bool,
    ) -> Result<Tls, LoadError> {
        let chain = read_chain(cert)?;
        let private_key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| LoadError(format!("TLS key {}: {}", key.display(), pem_reason(e))))?;
        let mut control = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, private_key)
            .map_err(|e| LoadError(format!("TLS certificate {} does not fit its key: {e}", cert.display())))?;
        control.ticketer = ticketer.clone();
        // Clients that spend one ticket per data connection (rustls's) can ask for as many as
        // they expect to need (RFC 9149); others get rustls's two and reuse one.
        control.max_tls13_tickets = MAX_TICKETS_ASKED;
        let mut data = control.clone();
        data.send_tls13_tickets = 0;
        data.max_tls13_tickets = 0;
        Ok(Tls {
            control: Arc::new(control),
            data: Arc::new(data),
            ticketer,
            allow_unresumed_data,
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        })
    }

    /// A server-side TLS session for a control connection of session `session_id`.
    pub fn control_session(&self, session_id: u64) -> Result<ServerConnection, rustls::Error> {
        let mut conn = ServerConnection::new(self.control.clone())?;
        conn.set_resumption_data(&tag(session_id));
        conn.set_buffer_limit(Some(BUFFER_LIMIT));
        Ok(conn)
    }

    /// A server-side TLS session for a data connection; `Binding::check` says whether it may
    /// carry a transfer once its handshake is done.
    pub fn data_session(&self) -> Result<ServerConnection, rustls::Error> {
        let mut conn = ServerConnection::new(self.data.clone())?;
        conn.set_buffer_limit(Some(BUFFER_LIMIT));
        Ok(conn)
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let what = |reason: String| LoadError(format!("TLS certificate {}: {reason}", path.display()));
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| what(pem_reason(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| what(pem_reason(e)))?;
    if chain.is_empty() {
        return Err(what("no CERTIFICATE block in the file".into()));
    }
    Ok(chain)
}

fn pem_reason(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(e) => e.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM block of the expected kind in the file".into(),
        other => format!("not valid PEM ({other:?})"),
    }
}

/// What a control connection writes into its tickets: the session id. rustls guarantees the
/// integrity of this data, so a client cannot forge another session's tag.
fn tag(session_id: u64) -> [u8; 8] {
    session_id.to_be_bytes()
}

/// `TLS 1.3, TLS13_AES_256_GCM_SHA384, resumed`: what an established TLS session uses, for logs.
pub fn describe(tls: &ServerConnection) -> String {
    let version = match tls.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => "TLS 1.3".to_string(),
        Some(ProtocolVersion::TLSv1_2) => "TLS 1.2".to_string(),
        other => format!("{other:?}"),
    };
    let suite = tls.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
    let kind = if tls.handshake_kind() == Some(HandshakeKind::Resumed) { "resumed" } else { "full handshake" };
    format!("{version}, {suite}, {kind}")
}

/// What a data connection's finished handshake must show.
#[derive(Clone, Copy, Debug)]
pub struct Binding {
    /// The session whose control connection's TLS session must be resumed.
    pub session_id: u64,
    /// The TLS version the control connection negotiated.
    pub control_version: Option<ProtocolVersion>,
    pub allow_unresumed: bool,
}

impl Binding {
    /// `Ok` if `data` (its handshake done) may carry this session's transfer; otherwise the
    /// reason it may not, for the log.
    pub fn check(&self, data: &ServerConnection) -> Result<(), String> {
        if self.allow_unresumed {
            return Ok(());
        }
        let resumed = data.handshake_kind() == Some(HandshakeKind::Resumed);
        match data.received_resumption_data() {
            Some(found) if found == tag(self.session_id) => Ok(()),
            Some(_) => Err("it resumed the TLS session of another control connection".into()),
            // rustls carries the tag in TLS 1.3 tickets only. A TLS 1.2 control connection is
            // held to what vsftpd checks: that the data connection resumed some session.
            None if resumed && self.control_version == Some(ProtocolVersion::TLSv1_2) => Ok(()),
            None if resumed => Err("it resumed a TLS 1.2 session while the control connection uses TLS 1.3".into()),
            None => Err("it did not resume the control connection's TLS session \
                         (a client that cannot: --tls-allow-unresumed-data)"
                .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::RootCertStore;
    use rustls::client::{ClientConfig, ClientConnection, Resumption};
    use rustls::pki_types::ServerName;

    struct Fixture {
        tls: Tls,
        client: Arc<ClientConfig>,
        dir: std::path::PathBuf,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// A server with a fresh certificate, and a client that trusts it and remembers tickets.
    fn fixture(name: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!("mioftpd-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
        let tls = Tls::load(&dir.join("cert.pem"), &dir.join("key.pem"), false).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(made.cert.der().clone()).unwrap();
        let mut client = ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        client.resumption = Resumption::in_memory_sessions(16);
        Fixture { tls, client: Arc::new(client), dir }
    }

    /// Runs a handshake in memory, then lets the server's post-handshake tickets reach the client.
    fn handshake(client: &mut ClientConnection, server: &mut ServerConnection) {
        for _ in 0..10 {
            let mut wire = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut wire).unwrap();
            }
            server.read_tls(&mut &wire[..]).unwrap();
            server.process_new_packets().unwrap();
            wire.clear();
            while server.wants_write() {
                server.write_tls(&mut wire).unwrap();
            }
            client.read_tls(&mut &wire[..]).unwrap();
            client.process_new_packets().unwrap();
        }
        assert!(!client.is_handshaking() && !server.is_handshaking());
    }

    fn connect(f: &Fixture, server: &mut ServerConnection) {
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = ClientConnection::new(f.client.clone(), name).unwrap();
        handshake(&mut client, server);
    }

    fn binding(session_id: u64) -> Binding {
        Binding { session_id, control_version: Some(ProtocolVersion::TLSv1_3), allow_unresumed: false }
    }

    #[test]
    fn a_data_connection_must_resume_its_own_sessions_ticket() {
        let f = fixture("bind");
        let mut control = f.tls.control_session(7).unwrap();
        connect(&f, &mut control);
        let mut data = f.tls.data_session().unwrap();
        connect(&f, &mut data);
        assert_eq!(data.handshake_kind(), Some(HandshakeKind::Resumed));
        assert_eq!(binding(7).check(&data), Ok(()));
        assert!(binding(8).check(&data).unwrap_err().contains("another control connection"));
    }

    #[test]
    fn a_client_that_spends_one_ticket_per_connection_can_ask_for_more() {
        let mut f = fixture("asked");
        let mut client = (*f.client).clone();
        client.send_ticket_request = Some(rustls::client::TicketRequest { new_session_count: 5, resumption_count: 0 });
        f.client = Arc::new(client);
        let mut control = f.tls.control_session(3).unwrap();
        connect(&f, &mut control);
        // rustls's client uses each TLS 1.3 ticket once: five tickets, five resumed connections.
        for _ in 0..5 {
            let mut data = f.tls.data_session().unwrap();
            connect(&f, &mut data);
            assert_eq!(binding(3).check(&data), Ok(()));
        }
        let mut sixth = f.tls.data_session().unwrap();
        connect(&f, &mut sixth);
        assert!(binding(3).check(&sixth).is_err(), "the data connections handed out tickets of their own");
    }

    #[test]
    fn data_connections_issue_no_tickets_and_fresh_ones_are_refused() {
        let f = fixture("fresh");
        // No control connection first: the client has no ticket, so the data handshake is full.
        let mut data = f.tls.data_session().unwrap();
        connect(&f, &mut data);
        assert!(binding(1).check(&data).unwrap_err().contains("did not resume"));
        let allowed = Binding { allow_unresumed: true, ..binding(1) };
        assert_eq!(allowed.check(&data), Ok(()));
        // ... and that data connection left the client nothing to resume with.
        let mut next = f.tls.data_session().unwrap();
        connect(&f, &mut next);
        assert_eq!(next.handshake_kind(), Some(HandshakeKind::Full));
    }
}
