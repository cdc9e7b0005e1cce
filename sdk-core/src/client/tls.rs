//! The crate's TLS client configuration, shared by every connection this
//! crate opens: the WebSocket driver's sockets and the HTTP clients of the
//! admin client and the app-endpoint token provider. Also the rule that
//! keeps credentials off plaintext links (`ws://`, `http://` only to a
//! loopback host unless the app says `allow_insecure`).
//!
//! Roots (docs/decisions.md, "TLS roots"): the operating system's trust
//! store (rustls-native-certs: the system bundle on Linux, the keychain on
//! macOS, the certificate store on Windows), so a company CA installed on
//! the machine is trusted as a browser would; where that store has nothing
//! (Android and iOS, whose stores rustls-native-certs cannot read, or a
//! container without `ca-certificates`) Mozilla's list compiled in (the
//! `webpki-roots` feature, on by default). An app adds its own CA with
//! `add_root_certificate_pem` on the builders; those roots come on top.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use crate::error::Error;

/// The platform's roots (or the compiled-in fallback). Loaded once: reading
/// the system store parses a few hundred certificates.
fn platform_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!(error = %e, "reading the system trust store");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, ignored, "system trust store loaded");
        if roots.is_empty() {
            #[cfg(feature = "webpki-roots")]
            {
                tracing::debug!("no system roots: using the compiled-in webpki roots");
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            #[cfg(not(feature = "webpki-roots"))]
            tracing::warn!(
                "no system roots found and the `webpki-roots` feature is off: \
                 only certificates added with add_root_certificate_pem are trusted"
            );
        }
        roots
    })
}

fn build_config(roots: RootCertStore) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// rustls with the ring provider, the safe default protocol versions and
/// the platform's roots. Built once and shared.
pub(crate) fn tls_config() -> Result<Arc<rustls::ClientConfig>, Error> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| build_config(platform_roots().clone()))
        .clone()
        .map_err(|message| Error::Config { message })
}

/// [`tls_config`] with `extra` trusted too. Without extra roots, the
/// shared configuration itself (no copy).
pub(crate) fn tls_config_with(
    extra: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, Error> {
    if extra.is_empty() {
        return tls_config();
    }
    let mut roots = platform_roots().clone();
    for cert in extra {
        roots.add(cert.clone()).map_err(|e| Error::Config {
            message: format!("a custom root certificate cannot be used as a trust anchor: {e}"),
        })?;
    }
    build_config(roots).map_err(|message| Error::Config { message })
}

/// Every `CERTIFICATE` section of a PEM text (other sections, such as a
/// key pasted along, are skipped). No certificate, or a section that is not
/// valid base64, is an [`Error::Config`].
pub(crate) fn parse_pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Config {
            message: format!("the custom root certificate is not valid PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(Error::Config {
            message: "the custom root certificate PEM holds no `BEGIN CERTIFICATE` section".into(),
        });
    }
    Ok(certs)
}

/// Collects the certificates a builder is given one PEM at a time, keeping
/// the first error for `build()` (builder methods do not fail).
#[derive(Clone, Debug, Default)]
pub(crate) struct ExtraRoots {
    pub(crate) certs: Vec<CertificateDer<'static>>,
    pub(crate) error: Option<Error>,
}

impl ExtraRoots {
    pub(crate) fn add_pem(&mut self, pem: &[u8]) {
        match parse_pem_certificates(pem) {
            Ok(certs) => self.certs.extend(certs),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }

    /// The certificates, or the first PEM error.
    pub(crate) fn checked(&self) -> Result<&[CertificateDer<'static>], Error> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(&self.certs),
        }
    }
}

/// True for `localhost` (and names under `.localhost`), 127.0.0.0/8 and
/// `::1` (bracketed or not): hosts whose traffic never leaves the machine.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return match ip {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        };
    }
    let lower = host.to_ascii_lowercase();
    lower == "localhost" || lower.ends_with(".localhost")
}

/// Refuses a plaintext URL (`ws`, `http`) to a host that is not loopback,
/// unless `allow_insecure`: on such a link every credential (a client key
/// in the query, an org key in a header) can be read by anyone on the way.
pub(crate) fn check_plaintext(
    scheme: &str,
    host: &str,
    allow_insecure: bool,
    setting: &str,
) -> Result<(), Error> {
    let plaintext = scheme.eq_ignore_ascii_case("ws") || scheme.eq_ignore_ascii_case("http");
    if plaintext && !allow_insecure && !is_loopback_host(host) {
        let secure = if scheme.eq_ignore_ascii_case("ws") {
            "wss"
        } else {
            "https"
        };
        return Err(Error::Config {
            message: format!(
                "refusing {scheme}:// to `{host}`: credentials would cross the network \
                 unencrypted; use {secure}://, or set {setting} for a trusted network"
            ),
        });
    }
    Ok(())
}

/// Whether a transport error is rustls refusing the handshake (an unknown
/// issuer, an expired certificate, a name mismatch), looking through the
/// `io::Error` tokio-rustls wraps it in.
pub(crate) fn find_tls_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // An `io::Error`'s `source()` skips the error it wraps (and
        // hyper-rustls wraps tokio-rustls's `io::Error` in another).
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|inner| find_tls_error(inner)) {
                return Some(tls);
            }
        }
        current = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_config_builds_once() {
        let a = tls_config().unwrap();
        let b = tls_config().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(Arc::ptr_eq(&a, &tls_config_with(&[]).unwrap()));
    }

    #[test]
    fn the_platform_store_or_the_fallback_has_roots() {
        // The system bundle where there is one; the webpki list otherwise.
        #[cfg(feature = "webpki-roots")]
        assert!(!platform_roots().is_empty());
    }

    #[test]
    fn bad_pem_is_a_config_error() {
        for pem in [
            &b""[..],
            b"not pem at all",
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            let e = parse_pem_certificates(pem).unwrap_err();
            assert!(matches!(e, Error::Config { .. }), "{e:?}");
        }
        let mut extra = ExtraRoots::default();
        extra.add_pem(b"nope");
        extra.add_pem(b"nope again");
        assert!(matches!(extra.checked(), Err(Error::Config { .. })));
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "LOCALHOST",
            "localhost.",
            "app.localhost",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "example.com",
            "localhost.example.com",
            "10.0.0.1",
            "[::2]",
            "0.0.0.0",
            "server",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn plaintext_needs_loopback_or_allow_insecure() {
        assert!(check_plaintext("ws", "127.0.0.1", false, "x").is_ok());
        assert!(check_plaintext("wss", "example.com", false, "x").is_ok());
        assert!(check_plaintext("https", "example.com", false, "x").is_ok());
        assert!(check_plaintext("ws", "example.com", true, "x").is_ok());
        let e = check_plaintext("ws", "example.com", false, "allow_insecure").unwrap_err();
        assert!(matches!(e, Error::Config { .. }));
        assert!(e.to_string().contains("allow_insecure"), "{e}");
        assert!(check_plaintext("http", "server", false, "x").is_err());
    }
}
