//! [`NetworkOptions`]: how a client reaches its server, shared by every
//! builder that opens connections (the WebSocket [`ClientBuilder`], the
//! [`AdminClientBuilder`], the app-endpoint token provider), so that each
//! binding states its users' TLS and proxy settings once.
//!
//! [`ClientBuilder`]: crate::ClientBuilder
//! [`AdminClientBuilder`]: crate::AdminClientBuilder

use super::tls::ExtraRoots;

/// Which proxy connections go through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum ProxyChoice {
    /// The environment's: `HTTPS_PROXY` (else `ALL_PROXY`), `NO_PROXY`;
    /// the admin client also `HTTP_PROXY`.
    #[default]
    FromEnv,
    /// This proxy URL, whatever the environment says.
    Url(String),
    /// None: connect directly.
    Disabled,
}

/// How a client reaches its server: CA certificates trusted on top of the
/// platform's, whether plain text is allowed beyond loopback, and the
/// proxy. Every builder that opens connections takes one
/// ([`ClientBuilder::network`](crate::ClientBuilder::network),
/// [`AdminClientBuilder::network`](crate::AdminClientBuilder::network)) and
/// also has a method for each setting.
///
/// ```
/// use tokenrelay::NetworkOptions;
///
/// let network = NetworkOptions::new()
///     .proxy("http://proxy.internal:3128")
///     .allow_insecure(false);
/// # let _ = network;
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "options do nothing until a builder takes them"]
pub struct NetworkOptions {
    pub(crate) extra_roots: ExtraRoots,
    pub(crate) allow_insecure: bool,
    pub(crate) proxy: ProxyChoice,
}

impl NetworkOptions {
    /// The defaults: the platform's trusted roots, plain text only to
    /// loopback, the proxy from the environment.
    pub fn new() -> NetworkOptions {
        NetworkOptions::default()
    }

    /// The settings as the language bindings receive them, each optional,
    /// at once: a PEM of extra CA certificates, `allow_insecure`, a proxy
    /// URL, and `no_proxy` (which wins over a proxy URL).
    pub fn from_parts(
        root_certificate_pem: Option<impl AsRef<[u8]>>,
        allow_insecure: bool,
        proxy: Option<String>,
        no_proxy: bool,
    ) -> NetworkOptions {
        let mut options = NetworkOptions::new().allow_insecure(allow_insecure);
        if let Some(pem) = root_certificate_pem {
            options = options.add_root_certificate_pem(pem);
        }
        if let Some(url) = proxy {
            options = options.proxy(url);
        }
        if no_proxy {
            options = options.no_proxy();
        }
        options
    }

    /// Trusts the CA certificate(s) in `pem` (one or more `BEGIN
    /// CERTIFICATE` sections) on top of the platform's roots: for a server
    /// whose certificate a private CA issued. Call it once per CA. A PEM
    /// without a certificate, or not valid, makes the builder's `build()`
    /// fail with [`Error::Config`](crate::Error::Config).
    pub fn add_root_certificate_pem(mut self, pem: impl AsRef<[u8]>) -> NetworkOptions {
        self.extra_roots.add_pem(pem.as_ref());
        self
    }

    /// Allows `ws://` or `http://` to a host that is not loopback
    /// (`localhost`, 127.0.0.0/8, `::1`). Off by default: every credential
    /// and message would cross the network unencrypted, so `build()`
    /// refuses it with [`Error::Config`](crate::Error::Config). Turn it on
    /// only for a network you trust (containers on a private bridge, say).
    pub fn allow_insecure(mut self, allow: bool) -> NetworkOptions {
        self.allow_insecure = allow;
        self
    }

    /// Connects through this proxy (`http://[user:pass@]host:port`; TLS is
    /// tunnelled with `CONNECT`), whatever the environment says. Without it
    /// the environment's proxy variables are followed (`HTTPS_PROXY`,
    /// `ALL_PROXY`, `NO_PROXY`, lowercase names too). A URL the builder
    /// cannot use makes `build()` fail with
    /// [`Error::Config`](crate::Error::Config).
    pub fn proxy(mut self, url: impl Into<String>) -> NetworkOptions {
        self.proxy = ProxyChoice::Url(url.into());
        self
    }

    /// Connects directly, ignoring the proxy environment variables.
    pub fn no_proxy(mut self) -> NetworkOptions {
        self.proxy = ProxyChoice::Disabled;
        self
    }
}

/// The HTTP side of these options, for the clients that speak HTTP (the
/// admin client, the app-endpoint token provider): a reqwest builder with
/// the crate's TLS roots plus the extra ones, and the proxy choice. The
/// caller adds its own settings (user agent, timeout) and builds.
#[cfg(any(feature = "admin", feature = "app-endpoint"))]
impl NetworkOptions {
    pub(crate) fn http_builder(&self) -> Result<reqwest::ClientBuilder, crate::Error> {
        let roots = self.extra_roots.checked()?;
        let builder = reqwest::Client::builder()
            .use_preconfigured_tls((*super::tls::tls_config_with(roots)?).clone());
        Ok(match &self.proxy {
            ProxyChoice::FromEnv => builder,
            ProxyChoice::Disabled => builder.no_proxy(),
            ProxyChoice::Url(url) => {
                let proxy = reqwest::Proxy::all(url).map_err(|e| crate::Error::Config {
                    message: format!("invalid proxy URL: {}", error_chain(&e)),
                })?;
                builder.proxy(proxy)
            }
        })
    }
}

/// reqwest's top-level message is generic ("error sending request"); the
/// cause (connection refused, certificate unknown) is in its sources.
#[cfg(any(feature = "admin", feature = "app-endpoint"))]
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_parts_is_the_methods_in_turn_and_no_proxy_wins() {
        let o = NetworkOptions::from_parts(None::<&[u8]>, true, Some("http://p:1".into()), false);
        assert!(o.allow_insecure);
        assert_eq!(o.proxy, ProxyChoice::Url("http://p:1".into()));
        let o = NetworkOptions::from_parts(None::<&[u8]>, false, Some("http://p:1".into()), true);
        assert_eq!(o.proxy, ProxyChoice::Disabled);
        let o = NetworkOptions::from_parts(Some(b"not a pem"), false, None, false);
        assert!(
            o.extra_roots.checked().is_err(),
            "kept for build() to report"
        );
        assert_eq!(NetworkOptions::new().proxy, ProxyChoice::FromEnv);
    }
}
