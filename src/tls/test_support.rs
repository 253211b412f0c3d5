//! Certificates for the unit tests, made on the fly with rcgen: a private
//! CA and leaf certificates it signs. No key is ever committed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// A test CA and one leaf for `localhost`, `127.0.0.1` and `::1`.
pub(crate) struct TestPki {
    pub ca: CertifiedIssuer<'static, KeyPair>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestPki {
    pub fn new() -> TestPki {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        // A name of its own: two CAs of one name look like one CA with a
        // bad signature to a verifier.
        static SERIAL: AtomicUsize = AtomicUsize::new(0);
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        p.distinguished_name
            .push(DnType::CommonName, format!("chatmon test CA {n}"));
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        let mut pki = TestPki {
            ca,
            cert_pem: String::new(),
            key_pem: String::new(),
        };
        let (c, k) = pki.leaf(&["localhost", "127.0.0.1", "::1"], None);
        pki.cert_pem = c;
        pki.key_pem = k;
        pki
    }

    /// A leaf signed by the CA for `names`, valid from `years.0` to
    /// `years.1` (1 January) when given. Returns (certificate, key) PEM.
    pub fn leaf(&self, names: &[&str], years: Option<(i32, i32)>) -> (String, String) {
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name.push(DnType::CommonName, names[0]);
        if let Some((from, to)) = years {
            p.not_before = rcgen::date_time_ymd(from, 1, 1);
            p.not_after = rcgen::date_time_ymd(to, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// Writes the leaf, its key and the CA certificate into `dir`.
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let c = dir.join("cert.pem");
        let k = dir.join("key.pem");
        let ca = dir.join("ca.pem");
        std::fs::write(&c, &self.cert_pem).unwrap();
        std::fs::write(&k, &self.key_pem).unwrap();
        std::fs::write(&ca, self.ca_pem()).unwrap();
        (c, k, ca)
    }

    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let dir = tempfile::tempdir().unwrap();
        let (c, k, _) = self.write(dir.path());
        super::server::load_server_config(&c, &k).unwrap()
    }

    /// A client config that trusts this CA only.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        Arc::new(
            rustls::ClientConfig::builder_with_provider(super::provider())
                .with_protocol_versions(super::PROTOCOL_VERSIONS)
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}
