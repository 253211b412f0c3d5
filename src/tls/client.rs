//! Client-side TLS for `chat --tls` and `bench --tls`: which certificates to
//! trust (the system's roots, a `--tls-ca` file, or nothing with
//! `--tls-insecure`), which name to check (the host part of `--server`, or
//! `--tls-name`), the async handshake with a deadline, and every way it can
//! fail as a sentence a person can act on ([`TlsConnectError`]). It knows
//! nothing of the chat protocol.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::server::{TlsConfigError, load_certs};

/// What the user asked for on the command line.
#[derive(Debug, Clone, Default)]
pub struct TlsClientOptions {
    /// `--tls-ca FILE`: trust the CA certificates in this PEM file instead of
    /// the system's roots (a private CA, or a self-signed server certificate).
    pub ca_file: Option<PathBuf>,
    /// `--tls-insecure`: accept any certificate. Encrypts, but anyone on the
    /// path can pose as the server.
    pub insecure: bool,
    /// `--tls-name NAME`: the name the certificate must carry, when it is not
    /// the host part of the server address (connecting by IP to a
    /// certificate for a DNS name, say).
    pub name: Option<String>,
}

/// Why a TLS client could not be set up (before any connection).
#[derive(Debug, thiserror::Error)]
pub enum TlsClientError {
    /// The `--tls-ca` file is missing, empty or broken.
    #[error("--tls-ca: {0}")]
    Ca(#[from] TlsConfigError),
    /// A certificate in the `--tls-ca` file is not a usable trust anchor.
    #[error("--tls-ca {}: a certificate cannot be used as a CA: {detail}", path.display())]
    BadCa { path: PathBuf, detail: String },
    /// The system has no root certificates rustls can use.
    #[error(
        "no system root certificates could be loaded ({detail}); install ca-certificates or pass --tls-ca FILE"
    )]
    NoSystemRoots { detail: String },
    /// The name to check is neither a DNS name nor an IP address.
    #[error(
        "{name:?} is not a name a TLS certificate can carry (a DNS name or an IP address); set one with --tls-name"
    )]
    BadName { name: String },
}

/// Why a TLS handshake with the server failed, in words.
#[derive(Debug, thiserror::Error)]
pub enum TlsConnectError {
    /// The certificate chain does not lead to a trusted root.
    #[error("certificate is not trusted (unknown issuer){hint}")]
    UnknownIssuer {
        /// What to do about it, depending on what was trusted.
        hint: &'static str,
    },
    /// The certificate is for other names.
    #[error("certificate is for {presented}, not {expected}")]
    NameMismatch { presented: String, expected: String },
    /// The certificate's `notAfter` has passed.
    #[error("certificate has expired{detail}")]
    Expired { detail: String },
    /// The certificate's `notBefore` is still to come (or the clock is off).
    #[error("certificate is not valid yet{detail}")]
    NotValidYet { detail: String },
    /// A CA certificate (basicConstraints CA:TRUE) served as the server's own.
    #[error(
        "certificate is a CA certificate, not a server certificate (make it with basicConstraints=CA:FALSE)"
    )]
    CaAsServer,
    /// Any other verdict on the certificate.
    #[error("certificate rejected: {0}")]
    BadCertificate(String),
    /// What came back is not TLS: a plain chatmon server answered.
    #[error("server does not speak TLS (its answer is not a TLS record; is it a plain server?)")]
    NotTls,
    /// No complete handshake in time.
    #[error(
        "no TLS handshake from the server within {}: does it speak TLS?",
        humantime::format_duration(*.0)
    )]
    Timeout(Duration),
    /// The server hung up mid-handshake.
    #[error(
        "server closed the connection during the TLS handshake (is it full, or not speaking TLS?)"
    )]
    Closed,
    /// Any other TLS failure, in rustls's terms made readable.
    #[error("TLS handshake failed: {0}")]
    Other(String),
    /// The socket failed.
    #[error("TLS handshake failed: {0}")]
    Io(#[source] io::Error),
}

/// A client's TLS settings, ready to connect any number of times.
#[derive(Debug, Clone)]
pub struct TlsClient {
    /// Shared by every connection, which also shares its session cache.
    config: Arc<ClientConfig>,
    /// The name the server's certificate must carry.
    name: ServerName<'static>,
    /// Verification is off (`--tls-insecure`): the UI must say so.
    insecure: bool,
    /// The system's roots are trusted (no `--tls-ca`), for the hint on an
    /// unknown issuer.
    system_roots: bool,
}

impl TlsClient {
    /// Settings for connecting to `server` (`host:port`, `[v6]:port`).
    pub fn new(server: &str, opts: &TlsClientOptions) -> Result<TlsClient, TlsClientError> {
        let name_text = opts
            .name
            .clone()
            .unwrap_or_else(|| host_of(server).to_string());
        let name = ServerName::try_from(name_text.clone())
            .map_err(|_| TlsClientError::BadName { name: name_text })?;
        let provider = super::provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(super::PROTOCOL_VERSIONS)
            .map_err(|e| TlsClientError::NoSystemRoots {
                detail: e.to_string(),
            })?;
        let (config, system_roots) = if opts.insecure {
            let config = builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                .with_no_client_auth();
            (config, false)
        } else if let Some(path) = &opts.ca_file {
            let mut roots = RootCertStore::empty();
            for cert in load_certs(path, "CA certificate")? {
                roots.add(cert).map_err(|e| TlsClientError::BadCa {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
            }
            (
                builder.with_root_certificates(roots).with_no_client_auth(),
                false,
            )
        } else {
            (
                builder
                    .with_root_certificates(system_roots()?)
                    .with_no_client_auth(),
                true,
            )
        };
        Ok(TlsClient {
            config: Arc::new(config),
            name,
            insecure: opts.insecure,
            system_roots,
        })
    }

    /// Turns off session resumption, so that every connection pays for a
    /// full handshake (what `bench` measures as handshakes per second).
    pub fn without_resumption(mut self) -> TlsClient {
        let mut config = (*self.config).clone();
        config.resumption = rustls::client::Resumption::disabled();
        self.config = Arc::new(config);
        self
    }

    /// Whether certificates go unchecked (`--tls-insecure`).
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// The name checked against the certificate.
    pub fn server_name(&self) -> String {
        self.name.to_str().into_owned()
    }

    /// The rustls config, for callers that drive rustls themselves.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// Runs the handshake over an open connection, giving up after `timeout`.
    pub async fn connect<S>(
        &self,
        io: S,
        timeout: Duration,
    ) -> Result<tokio_rustls::client::TlsStream<S>, TlsConnectError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        match tokio::time::timeout(timeout, connector.connect(self.name.clone(), io)).await {
            Err(_) => Err(TlsConnectError::Timeout(timeout)),
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(self.explain_io(e)),
        }
    }

    /// [`connect`](Self::connect) over a TCP connection, as a [`ClientStream`].
    pub async fn open(
        &self,
        tcp: tokio::net::TcpStream,
        timeout: Duration,
    ) -> Result<ClientStream, TlsConnectError> {
        let s = self.connect(tcp, timeout).await?;
        Ok(ClientStream::Tls(Box::new(s)))
    }

    /// Explains an I/O error from a TLS stream (the handshake or later).
    pub fn explain_io(&self, e: io::Error) -> TlsConnectError {
        if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return self.explain(tls);
        }
        match e.kind() {
            io::ErrorKind::UnexpectedEof => TlsConnectError::Closed,
            _ => TlsConnectError::Io(e),
        }
    }

    /// Explains a rustls error on the client's side.
    pub fn explain(&self, err: &rustls::Error) -> TlsConnectError {
        match err {
            rustls::Error::InvalidCertificate(why) => self.explain_certificate(why),
            rustls::Error::InvalidMessage(_) => TlsConnectError::NotTls,
            other => TlsConnectError::Other(super::describe_common(other)),
        }
    }

    fn explain_certificate(&self, why: &CertificateError) -> TlsConnectError {
        match why {
            CertificateError::UnknownIssuer => TlsConnectError::UnknownIssuer {
                hint: if self.system_roots {
                    "; for a private CA or a self-signed certificate pass --tls-ca FILE"
                } else {
                    "; it is not signed by a CA in --tls-ca"
                },
            },
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => TlsConnectError::NameMismatch {
                presented: {
                    let names: Vec<&str> = presented.iter().filter_map(|n| plain_name(n)).collect();
                    if names.is_empty() {
                        "no DNS name or IP address".to_string()
                    } else {
                        names.join(", ")
                    }
                },
                expected: expected.to_str().into_owned(),
            },
            CertificateError::NotValidForName => TlsConnectError::NameMismatch {
                presented: "other names".to_string(),
                expected: self.server_name(),
            },
            CertificateError::Expired => TlsConnectError::Expired {
                detail: String::new(),
            },
            CertificateError::ExpiredContext { time, not_after } => TlsConnectError::Expired {
                detail: format!(" (valid until {}, now {})", utc(not_after), utc(time)),
            },
            CertificateError::NotValidYet => TlsConnectError::NotValidYet {
                detail: String::new(),
            },
            CertificateError::NotValidYetContext { time, not_before } => {
                TlsConnectError::NotValidYet {
                    detail: format!(" (valid from {}, now {})", utc(not_before), utc(time)),
                }
            }
            CertificateError::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => {
                TlsConnectError::CaAsServer
            }
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                TlsConnectError::BadCertificate(
                    "it is not a certificate for TLS servers (extended key usage)".to_string(),
                )
            }
            CertificateError::BadSignature => TlsConnectError::BadCertificate(
                "its signature is invalid (signed by another CA of the same name?)".to_string(),
            ),
            // Seen when a self-signed certificate is checked against roots
            // that do not hold it: webpki tries issuers by name and fails
            // on the signature before it can say "unknown issuer".
            CertificateError::UnsupportedSignatureAlgorithmContext { .. }
            | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                TlsConnectError::BadCertificate(
                    "its signature could not be checked against any trusted issuer (a self-signed \
                     or private-CA certificate? pass it with --tls-ca)"
                        .to_string(),
                )
            }
            CertificateError::Revoked => {
                TlsConnectError::BadCertificate("it has been revoked".to_string())
            }
            other => TlsConnectError::BadCertificate(format!("{other:?}")),
        }
    }
}

/// A subject name as webpki reports it (`DnsName("a.example")`,
/// `IpAddress(127.0.0.1)`) as a person writes it; other kinds of names
/// (URIs, directory names) cannot match a server name and are left out.
fn plain_name(reported: &str) -> Option<&str> {
    if let Some(dns) = reported
        .strip_prefix("DnsName(\"")
        .and_then(|r| r.strip_suffix("\")"))
    {
        return Some(dns);
    }
    reported
        .strip_prefix("IpAddress(")
        .and_then(|r| r.strip_suffix(')'))
}

fn utc(t: &UnixTime) -> String {
    let secs = i64::try_from(t.as_secs()).unwrap_or(i64::MAX);
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(d) => d.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => format!("{secs} s after 1970"),
    }
}

/// The host part of a server address: `host:port`, `[v6]:port`, a bare v6
/// address or a bare host.
pub fn host_of(server: &str) -> &str {
    if let Some(rest) = server.strip_prefix('[')
        && let Some(end) = rest.find(']')
    {
        return &rest[..end];
    }
    match server.rsplit_once(':') {
        Some((host, port))
            if !host.contains(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            host
        }
        _ => server,
    }
}

/// The system's trusted roots (Debian's ca-certificates, `SSL_CERT_FILE`...).
fn system_roots() -> Result<RootCertStore, TlsClientError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let detail = if found.errors.is_empty() {
            "none found".to_string()
        } else {
            found
                .errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        };
        return Err(TlsClientError::NoSystemRoots { detail });
    }
    Ok(roots)
}

/// `--tls-insecure`: any certificate is accepted. The handshake signatures
/// are still checked, so the session is at least bound to the key the
/// server presented, but who holds that key is anyone's guess.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client connection, plain or TLS, as one tokio stream type for the chat
/// client and the bench. The plain variant is the bare socket, and its split
/// halves are tokio's owned halves, so plain clients pay nothing for TLS.
/// Write with `write_all` and then `flush`: a TLS record that did not fit in
/// the socket waits in rustls until the next write or flush.
#[derive(Debug)]
pub enum ClientStream {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

type TlsTcp = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// The read half of a [`ClientStream`].
#[derive(Debug)]
pub enum ClientReader {
    Plain(tokio::net::tcp::OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsTcp>),
}

/// The write half of a [`ClientStream`].
#[derive(Debug)]
pub enum ClientWriter {
    Plain(tokio::net::tcp::OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsTcp>),
}

impl ClientStream {
    /// Splits into halves that a reader and a writer can use concurrently.
    pub fn into_split(self) -> (ClientReader, ClientWriter) {
        match self {
            ClientStream::Plain(s) => {
                let (r, w) = s.into_split();
                (ClientReader::Plain(r), ClientWriter::Plain(w))
            }
            ClientStream::Tls(s) => {
                let (r, w) = tokio::io::split(*s);
                (ClientReader::Tls(r), ClientWriter::Tls(w))
            }
        }
    }

    /// Whether this connection is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, ClientStream::Tls(_))
    }
}

macro_rules! delegate_read {
    ($t:ty) => {
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
                    Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
                }
            }
        }
    };
}

macro_rules! delegate_write {
    ($t:ty) => {
        impl AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
                    Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Plain(s) => Pin::new(s).poll_flush(cx),
                    Self::Tls(s) => Pin::new(s).poll_flush(cx),
                }
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
                    Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
                }
            }
        }
    };
}

delegate_read!(ClientStream);
delegate_read!(ClientReader);
delegate_write!(ClientStream);
delegate_write!(ClientWriter);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::stream::TlsStream;
    use crate::tls::test_support::TestPki;
    use std::net::{SocketAddr, TcpListener};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    #[test]
    fn names_as_webpki_reports_them() {
        assert_eq!(plain_name("DnsName(\"a.example\")"), Some("a.example"));
        assert_eq!(plain_name("IpAddress(127.0.0.1)"), Some("127.0.0.1"));
        assert_eq!(plain_name("DirectoryName"), None);
    }

    #[test]
    fn host_of_addresses() {
        assert_eq!(host_of("127.0.0.1:7878"), "127.0.0.1");
        assert_eq!(host_of("chat.example.org:7878"), "chat.example.org");
        assert_eq!(host_of("[::1]:7878"), "::1");
        assert_eq!(host_of("::1"), "::1");
        assert_eq!(host_of("localhost"), "localhost");
    }

    #[test]
    fn bad_names_and_ca_files_are_worded() {
        let e = TlsClient::new(
            "x:1",
            &TlsClientOptions {
                name: Some("not a name!".into()),
                insecure: true,
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("is not a name a TLS certificate can carry"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("ca.pem");
        let e = TlsClient::new(
            "localhost:1",
            &TlsClientOptions {
                ca_file: Some(missing),
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("--tls-ca: cannot read the CA certificate file"),
            "{e}"
        );
    }

    /// A blocking TLS server in a thread (the real server's stream) that
    /// answers one line, serving `cert`/`key`; returns its address.
    fn serve_once(cert: &str, key: &str) -> SocketAddr {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("c.pem");
        let k = dir.path().join("k.pem");
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        let config = crate::tls::server::load_server_config(&c, &k).unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (sock, _) = l.accept().unwrap();
            if let Ok(s) = TlsStream::accept(sock, config, Duration::from_secs(5)) {
                let mut buf = [0u8; 256];
                if let Ok(n) = s.read(&mut buf) {
                    let mut reply = b"Server received: ".to_vec();
                    reply.extend_from_slice(&buf[..n]);
                    let _ = s.write_all(&reply);
                    let _ = s.close_notify();
                }
            }
        });
        addr
    }

    async fn try_connect(
        addr: SocketAddr,
        server: &str,
        opts: TlsClientOptions,
    ) -> Result<String, TlsConnectError> {
        let client = TlsClient::new(server, &opts).unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut s = client.connect(tcp, Duration::from_secs(5)).await?;
        s.write_all(b"hello\n")
            .await
            .map_err(|e| client.explain_io(e))?;
        let mut line = String::new();
        BufReader::new(s)
            .read_line(&mut line)
            .await
            .map_err(|e| client.explain_io(e))?;
        Ok(line)
    }

    fn ca_opts(pki: &TestPki, dir: &tempfile::TempDir) -> TlsClientOptions {
        let (_, _, ca) = pki.write(dir.path());
        TlsClientOptions {
            ca_file: Some(ca),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn verified_connection_with_tls_ca() {
        let pki = TestPki::new();
        let dir = tempfile::tempdir().unwrap();
        let addr = serve_once(&pki.cert_pem, &pki.key_pem);
        let line = try_connect(
            addr,
            &format!("localhost:{}", addr.port()),
            ca_opts(&pki, &dir),
        )
        .await
        .unwrap();
        assert_eq!(line, "Server received: hello\n");
        // By IP address: the certificate carries 127.0.0.1 too.
        let addr = serve_once(&pki.cert_pem, &pki.key_pem);
        let line = try_connect(addr, &addr.to_string(), ca_opts(&pki, &dir))
            .await
            .unwrap();
        assert_eq!(line, "Server received: hello\n");
    }

    #[tokio::test]
    async fn unknown_ca_is_worded() {
        let pki = TestPki::new();
        let other = TestPki::new();
        let dir = tempfile::tempdir().unwrap();
        let addr = serve_once(&pki.cert_pem, &pki.key_pem);
        let e = try_connect(addr, "localhost:1", ca_opts(&other, &dir))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "certificate is not trusted (unknown issuer); it is not signed by a CA in --tls-ca"
        );
    }

    #[tokio::test]
    async fn name_mismatch_is_worded() {
        let pki = TestPki::new();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pki.leaf(&["chat.example.org"], None);
        let addr = serve_once(&cert, &key);
        let e = try_connect(addr, &addr.to_string(), ca_opts(&pki, &dir))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "certificate is for chat.example.org, not 127.0.0.1"
        );
        // --tls-name fixes it.
        let addr = serve_once(&cert, &key);
        let mut opts = ca_opts(&pki, &dir);
        opts.name = Some("chat.example.org".into());
        assert_eq!(
            try_connect(addr, &addr.to_string(), opts).await.unwrap(),
            "Server received: hello\n"
        );
    }

    #[tokio::test]
    async fn expired_and_not_yet_valid_are_worded() {
        let pki = TestPki::new();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pki.leaf(&["localhost"], Some((2020, 2021)));
        let addr = serve_once(&cert, &key);
        let e = try_connect(addr, "localhost:1", ca_opts(&pki, &dir))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("certificate has expired (valid until 2021-01-01 00:00:00 UTC, now "),
            "{e}"
        );
        let (cert, key) = pki.leaf(&["localhost"], Some((2900, 2901)));
        let addr = serve_once(&cert, &key);
        let e = try_connect(addr, "localhost:1", ca_opts(&pki, &dir))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("certificate is not valid yet (valid from 2900-01-01 00:00:00 UTC"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn insecure_accepts_anything() {
        let pki = TestPki::new();
        let (cert, key) = pki.leaf(&["elsewhere.example"], Some((2020, 2021)));
        let addr = serve_once(&cert, &key);
        let opts = TlsClientOptions {
            insecure: true,
            ..Default::default()
        };
        assert!(TlsClient::new("x:1", &opts).unwrap().is_insecure());
        assert_eq!(
            try_connect(addr, "localhost:1", opts).await.unwrap(),
            "Server received: hello\n"
        );
    }

    #[tokio::test]
    async fn a_plain_server_does_not_speak_tls() {
        // Answers like chatmon's plain mode: text, whatever it got.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"Server received: \x16\x03\x01\n");
        });
        let pki = TestPki::new();
        let dir = tempfile::tempdir().unwrap();
        let e = try_connect(addr, "localhost:1", ca_opts(&pki, &dir))
            .await
            .unwrap_err();
        assert!(matches!(e, TlsConnectError::NotTls), "{e:?}");
        assert!(
            e.to_string().starts_with("server does not speak TLS"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_silent_server_times_out_and_a_closing_one_is_worded() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let pki = TestPki::new();
        let dir = tempfile::tempdir().unwrap();
        let client = TlsClient::new("localhost:1", &ca_opts(&pki, &dir)).unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let e = client
            .connect(tcp, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "no TLS handshake from the server within 200ms: does it speak TLS?"
        );
        std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            drop(s);
            let (s, _) = l.accept().unwrap();
            drop(s);
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let e = client
            .connect(tcp, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(e, TlsConnectError::Closed | TlsConnectError::Io(_)),
            "{e:?}"
        );
    }

    #[test]
    fn without_resumption_keeps_the_rest() {
        let opts = TlsClientOptions {
            insecure: true,
            name: Some("chat.example.org".into()),
            ..Default::default()
        };
        let c = TlsClient::new("127.0.0.1:1", &opts)
            .unwrap()
            .without_resumption();
        assert_eq!(c.server_name(), "chat.example.org");
        assert!(c.is_insecure());
    }
}
