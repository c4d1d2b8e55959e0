//! Explicit FTPS for the load generator: one client configuration, and per control connection a
//! TLS session that its data connections resume.
//!
//! Certificates are not verified: ftpbench only talks to a server the person running it started
//! on loopback, usually with a self-signed certificate, and checking a chain would only measure
//! more client work. The handshake's signature still is verified, so the TLS work the server
//! does is the same as with any real client. Benchmark use only.
//!
//! Why each control connection gets its own resumption store: servers that insist on data
//! connections resuming the control connection's session (mioftpd, vsftpd) refuse one that
//! resumes another client's, and a store shared by every client thread keyed by the server's
//! name would hand out any client's session.

use crate::stream::Stream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, ClientConnection, Resumption};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme, StreamOwned};
use std::io;
use std::net::{IpAddr, TcpStream};
use std::sync::Arc;

/// The TLS version every connection negotiates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Version {
    /// A TLS 1.2 session can be resumed any number of times, so every scenario works.
    #[value(name = "1.2")]
    Tls12,
    /// rustls uses each TLS 1.3 ticket once, so a session opens at most as many TLS data
    /// connections as the server sent tickets (mioftpd and OpenSSL send 2): enough for
    /// `sessions` (one LIST each) and `idle`, not for `retr`, `small` or `stor`.
    #[value(name = "1.3")]
    Tls13,
}

impl Version {
    pub fn name(self) -> &'static str {
        match self {
            Version::Tls12 => "TLS 1.2",
            Version::Tls13 => "TLS 1.3",
        }
    }
}

/// Tickets or sessions kept per control connection: the server sends a couple at most.
const STORED_SESSIONS: usize = 4;

/// The configuration every session starts from.
pub struct Tls {
    base: ClientConfig,
    pub version: Version,
}

impl Tls {
    pub fn new(version: Version) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = match version {
            Version::Tls12 => &[&rustls::version::TLS12],
            Version::Tls13 => &[&rustls::version::TLS13],
        };
        let verifier = AnyCertificate { algorithms: provider.signature_verification_algorithms };
        let base = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| format!("TLS client configuration: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(Tls { base, version })
    }

    /// A TLS session for a new control connection to `server`.
    pub fn session(&self, server: IpAddr) -> Session {
        let mut config = self.base.clone();
        config.resumption = Resumption::in_memory_sessions(STORED_SESSIONS);
        Session { config: Arc::new(config), name: ServerName::IpAddress(server.into()) }
    }
}

/// One control connection's TLS: the connections made with it share its resumption store and
/// server name, so each data connection resumes what the control connection's handshake left
/// there.
pub struct Session {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl Session {
    /// Wraps a connected socket. No byte moves yet: the handshake happens on the first read or
    /// write, so a data connection's handshake can wait for the server's `150` (vsftpd starts
    /// its side only after the transfer command).
    pub fn wrap(&self, tcp: TcpStream) -> io::Result<Stream> {
        let conn = ClientConnection::new(self.config.clone(), self.name.clone()).map_err(io::Error::other)?;
        Ok(Stream::Tls(Box::new(StreamOwned::new(conn, tcp))))
    }
}

/// Accepts any certificate; checks that the server signed the handshake with its key.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
