//! The crate's one TLS client configuration, shared by every connection
//! this crate opens: the WebSocket driver's sockets and the HTTP clients of
//! the admin client and the app-endpoint token provider.

use std::sync::{Arc, OnceLock};

use crate::error::Error;

/// rustls with the ring provider, the safe default protocol versions and
/// the webpki root certificates. Built once (loading the roots is not
/// free) and shared.
pub(crate) fn tls_config() -> Result<Arc<rustls::ClientConfig>, Error> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("cannot set up TLS: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(|message| Error::Config { message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_config_builds_once() {
        let a = tls_config().unwrap();
        let b = tls_config().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
