//! Server-side TLS setup: loads a PEM certificate chain and its private key
//! (PKCS#8, PKCS#1 or SEC1), builds a rustls [`ServerConfig`] that speaks TLS
//! 1.2 and 1.3 only, and holds it in a [`ReloadableServerConfig`] that SIGHUP
//! can swap without touching the connections already made (each took its own
//! `Arc` of the config it was accepted with). Every failure is a
//! [`TlsConfigError`] that says which file and what is wrong with it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate or key could not be used, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The file could not be read at all (missing, unreadable).
    #[error("cannot read the {what} file {}: {source}", path.display())]
    Read {
        /// "certificate", "key" or "CA certificate".
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A PEM block is broken (bad base64, a BEGIN without its END).
    #[error("{} is not valid PEM: {detail}", path.display())]
    BadPem { path: PathBuf, detail: String },
    /// No `CERTIFICATE` block in the file.
    #[error(
        "no certificate in {} (expected a PEM block \"-----BEGIN CERTIFICATE-----\"){hint}",
        path.display()
    )]
    NoCertificate { path: PathBuf, hint: &'static str },
    /// No private key block of a kind rustls reads.
    #[error(
        "no private key in {} (expected PEM PKCS#8 \"BEGIN PRIVATE KEY\", PKCS#1 \"BEGIN RSA PRIVATE KEY\" or SEC1 \"BEGIN EC PRIVATE KEY\"){hint}",
        path.display()
    )]
    NoKey { path: PathBuf, hint: &'static str },
    /// The key is encrypted with a passphrase, which a server that restarts
    /// and reloads by itself cannot type.
    #[error(
        "the private key in {} is encrypted; chatmon needs it unencrypted (openssl pkey -in {} -out key.pem)",
        path.display(),
        path.display()
    )]
    EncryptedKey { path: PathBuf },
    /// The key parsed as PEM but rustls cannot sign with it.
    #[error("the private key in {} cannot be used: {detail}", path.display())]
    BadKey { path: PathBuf, detail: String },
    /// The key is not the one the certificate was issued for.
    #[error(
        "the private key in {} does not match the certificate in {}",
        key.display(),
        cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// The certificate is not a usable X.509 certificate.
    #[error("the certificate in {} cannot be used: {detail}", path.display())]
    BadCertificate { path: PathBuf, detail: String },
}

/// Reads every certificate in a PEM file, in order (a chain: the server's
/// own certificate first, then the intermediates). Also used by the client
/// for `--tls-ca`, hence `what`.
pub fn load_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let bytes = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_pem(path, e))?;
    if certs.is_empty() {
        let hint = if contains(&bytes, b"PRIVATE KEY-----") {
            "; it holds a private key: are --tls-cert and --tls-key swapped?"
        } else {
            ""
        };
        return Err(TlsConfigError::NoCertificate {
            path: path.to_path_buf(),
            hint,
        });
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let bytes = read(path, "key")?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            if contains(&bytes, b"ENCRYPTED PRIVATE KEY-----")
                || contains(&bytes, b"Proc-Type: 4,ENCRYPTED")
            {
                return Err(TlsConfigError::EncryptedKey {
                    path: path.to_path_buf(),
                });
            }
            let hint = if contains(&bytes, b"BEGIN CERTIFICATE-----") {
                "; it holds a certificate: are --tls-cert and --tls-key swapped?"
            } else {
                ""
            };
            Err(TlsConfigError::NoKey {
                path: path.to_path_buf(),
                hint,
            })
        }
        Err(e) => Err(bad_pem(path, e)),
    }
}

/// Builds a server config from a certificate chain file and a key file:
/// TLS 1.2 and 1.3, no client certificates, the key checked against the
/// certificate.
pub fn load_server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let chain = load_certs(cert, "certificate")?;
    let key_der = load_key(key)?;
    let builder = ServerConfig::builder_with_provider(super::provider())
        .with_protocol_versions(super::PROTOCOL_VERSIONS)
        .map_err(|e| TlsConfigError::BadKey {
            path: key.to_path_buf(),
            detail: e.to_string(),
        })?;
    let config = builder
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| config_error(cert, key, e))?;
    Ok(Arc::new(config))
}

/// Sorts a rustls error from `with_single_cert` onto the file it is about.
fn config_error(cert: &Path, key: &Path, err: rustls::Error) -> TlsConfigError {
    use rustls::{Error, InconsistentKeys};
    match err {
        Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => TlsConfigError::KeyMismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        },
        Error::InvalidCertificate(why) => TlsConfigError::BadCertificate {
            path: cert.to_path_buf(),
            detail: format!("{why:?}"),
        },
        Error::NoCertificatesPresented => TlsConfigError::NoCertificate {
            path: cert.to_path_buf(),
            hint: "",
        },
        // The key provider's "failed to parse private key" and unsupported
        // algorithms (DSA, a curve ring lacks) land here.
        other => TlsConfigError::BadKey {
            path: key.to_path_buf(),
            detail: other.to_string(),
        },
    }
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn bad_pem(path: &Path, e: pem::Error) -> TlsConfigError {
    let detail = match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "a block has no end line {:?}",
            String::from_utf8_lossy(&end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => {
            format!("bad BEGIN line {:?}", String::from_utf8_lossy(&line))
        }
        pem::Error::Base64Decode(why) => format!("bad base64 in a block ({why})"),
        other => other.to_string(),
    };
    TlsConfigError::BadPem {
        path: path.to_path_buf(),
        detail,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The server config of a running server, reloadable: new connections take
/// [`current`](Self::current), and [`reload`](Self::reload) swaps in a config
/// read afresh from the same files, or keeps the old one when they are bad.
#[derive(Debug)]
pub struct ReloadableServerConfig {
    /// Where the certificate chain is read from, at start and on every reload.
    cert: PathBuf,
    /// Where the private key is read from.
    key: PathBuf,
    /// The config new handshakes use. A read lock is held only to clone the
    /// `Arc`, so a reload never waits on a handshake and vice versa.
    current: RwLock<Arc<ServerConfig>>,
}

impl ReloadableServerConfig {
    /// Loads the pair for the first time; an error here should stop `serve`.
    pub fn load(
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Result<ReloadableServerConfig, TlsConfigError> {
        let cert = cert.into();
        let key = key.into();
        let config = load_server_config(&cert, &key)?;
        Ok(ReloadableServerConfig {
            cert,
            key,
            current: RwLock::new(config),
        })
    }

    /// The config for a new connection.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads the certificate and key again (after a renewal). On success new
    /// connections use them; on error the old pair stays in use and the error
    /// says why. Connections already made are never touched.
    pub fn reload(&self) -> Result<(), TlsConfigError> {
        let fresh = load_server_config(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// The certificate file, for log lines.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// The key file, for log lines.
    pub fn key_path(&self) -> &Path {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn pair(dir: &Path, tag: &str) -> (PathBuf, PathBuf, CertificateDer<'static>) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let c = write(dir, &format!("{tag}-cert.pem"), &ck.cert.pem());
        let k = write(
            dir,
            &format!("{tag}-key.pem"),
            &ck.signing_key.serialize_pem(),
        );
        (c, k, ck.cert.der().clone())
    }

    #[test]
    fn loads_a_chain_and_a_pkcs8_key() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k, _) = pair(dir.path(), "a");
        // A chain: the leaf and another certificate after it.
        let other = rcgen::generate_simple_self_signed(vec!["ca.test".to_string()]).unwrap();
        let chain = format!(
            "{}{}",
            std::fs::read_to_string(&c).unwrap(),
            other.cert.pem()
        );
        std::fs::write(&c, chain).unwrap();
        assert_eq!(load_certs(&c, "certificate").unwrap().len(), 2);
        load_server_config(&c, &k).unwrap();
    }

    #[test]
    fn missing_file_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let (_, k, _) = pair(dir.path(), "a");
        let missing = dir.path().join("nope.pem");
        let e = load_server_config(&missing, &k).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("cannot read the certificate file ") && text.contains("nope.pem"),
            "{text}"
        );
        assert!(text.contains("No such file"), "{text}");
    }

    #[test]
    fn file_without_certificate_says_so_and_spots_swapped_flags() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k, _) = pair(dir.path(), "a");
        let empty = write(dir.path(), "empty.pem", "just text\n");
        let e = load_server_config(&empty, &k).unwrap_err().to_string();
        assert!(e.starts_with("no certificate in "), "{e}");
        assert!(!e.contains("swapped"), "{e}");
        let e = load_server_config(&k, &c).unwrap_err().to_string();
        assert!(
            e.contains("no certificate in") && e.contains("swapped"),
            "{e}"
        );
    }

    #[test]
    fn file_without_key_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _, _) = pair(dir.path(), "a");
        let e = load_server_config(&c, &c).unwrap_err().to_string();
        assert!(e.starts_with("no private key in "), "{e}");
        assert!(e.contains("swapped"), "{e}");
        let enc = write(
            dir.path(),
            "enc.pem",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        let e = load_server_config(&c, &enc).unwrap_err().to_string();
        assert!(e.contains("is encrypted"), "{e}");
    }

    #[test]
    fn broken_pem_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (_, k, _) = pair(dir.path(), "a");
        let bad = write(dir.path(), "bad.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n");
        let e = load_server_config(&bad, &k).unwrap_err().to_string();
        assert!(e.contains("is not valid PEM"), "{e}");
    }

    #[test]
    fn key_of_another_certificate_is_a_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, _, _) = pair(dir.path(), "a");
        let (_, k2, _) = pair(dir.path(), "b");
        let e = load_server_config(&c1, &k2).unwrap_err();
        assert!(matches!(e, TlsConfigError::KeyMismatch { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("b-key.pem does not match the certificate in")
                && text.contains("a-cert.pem"),
            "{text}"
        );
    }

    #[test]
    fn garbage_inside_a_certificate_block_is_a_bad_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (_, k, _) = pair(dir.path(), "a");
        let junk = write(
            dir.path(),
            "junk.pem",
            "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
        );
        let e = load_server_config(&junk, &k).unwrap_err();
        assert!(
            matches!(e, TlsConfigError::BadCertificate { .. }),
            "{e:?}: {e}"
        );
    }

    #[test]
    fn reload_swaps_a_good_pair_and_keeps_the_old_on_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k, _) = pair(dir.path(), "a");
        let holder = ReloadableServerConfig::load(&c, &k).unwrap();
        let first = holder.current();

        // A renewal: new pair at the same paths.
        let (c2, k2, _) = pair(dir.path(), "b");
        std::fs::copy(&c2, &c).unwrap();
        std::fs::copy(&k2, &k).unwrap();
        holder.reload().unwrap();
        let second = holder.current();
        assert!(!Arc::ptr_eq(&first, &second));

        // A botched renewal: new certificate, old key. The old pair stays.
        let (c3, _, _) = pair(dir.path(), "c");
        std::fs::copy(&c3, &c).unwrap();
        let e = holder.reload().unwrap_err();
        assert!(matches!(e, TlsConfigError::KeyMismatch { .. }), "{e}");
        assert!(Arc::ptr_eq(&second, &holder.current()));

        std::fs::remove_file(&k).unwrap();
        let e = holder.reload().unwrap_err().to_string();
        assert!(e.starts_with("cannot read the key file"), "{e}");
        assert!(Arc::ptr_eq(&second, &holder.current()));
        assert_eq!(holder.cert_path(), c.as_path());
        assert_eq!(holder.key_path(), k.as_path());
    }
}
