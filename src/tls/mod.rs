//! TLS for chatmon on rustls with the ring provider (no OpenSSL, no C
//! toolchain beyond what ring needs). This module owns certificates, keys,
//! rustls configs and TLS errors in words; it knows nothing of the chat
//! protocol, the hub or the log.
//!
//! - [`server`]: PEM certificate chain and key loading, the server config
//!   (TLS 1.2 and 1.3 only) and a holder that reloads it atomically.
//! - [`stream`]: the blocking server-side TLS connection of the
//!   thread-per-client server, shared by a session's reader and writer.
//! - [`client`]: client configs (system roots, `--tls-ca`, `--tls-insecure`),
//!   the server name to check, and handshake failures in words.

pub mod client;
pub mod server;
pub mod stream;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

/// The protocol versions chatmon speaks, newest first. rustls has nothing
/// older, but naming them keeps a future default from widening the set.
pub(crate) static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The one crypto provider of the process, built once: every config, server
/// or client, uses ring explicitly rather than a process-wide default that a
/// dependency could have installed.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The warning `serve` prints before listening on a non-loopback address
/// without TLS: whoever is on the path reads the chat and the token.
pub fn cleartext_warning(bind: SocketAddr, tls: bool) -> Option<String> {
    if tls || bind.ip().is_loopback() {
        return None;
    }
    Some(format!(
        "warning: listening on {bind} without TLS (--tls-cert/--tls-key): the chat and the token cross the network in clear text"
    ))
}

/// A rustls error from either side of a handshake, in words for a person;
/// the side-specific wording (which certificate, which flag to use) is added
/// by [`client`] and [`stream`].
pub(crate) fn describe_common(err: &rustls::Error) -> String {
    use rustls::Error;
    match err {
        Error::AlertReceived(alert) => format!("the peer sent the TLS alert {alert:?}"),
        Error::PeerIncompatible(why) => {
            format!("the peer shares no TLS version or cipher suite with chatmon ({why:?})")
        }
        Error::PeerMisbehaved(why) => format!("the peer broke the TLS protocol ({why:?})"),
        Error::InvalidMessage(why) => format!("the peer sent data that is not TLS ({why:?})"),
        Error::DecryptError => "a TLS record failed to decrypt (corrupted or forged)".to_string(),
        Error::NoCertificatesPresented => "the peer presented no certificate".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleartext_warning_only_off_loopback_without_tls() {
        let lo: SocketAddr = "127.0.0.1:7878".parse().unwrap();
        let lo6: SocketAddr = "[::1]:7878".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:7878".parse().unwrap();
        assert_eq!(cleartext_warning(lo, false), None);
        assert_eq!(cleartext_warning(lo6, false), None);
        assert_eq!(cleartext_warning(any, true), None);
        let w = cleartext_warning(any, false).unwrap();
        assert!(
            w.contains("clear text") && w.contains("0.0.0.0:7878"),
            "{w}"
        );
    }
}
