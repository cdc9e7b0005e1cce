//! Where fresh credentials come from.
//!
//! The connection asks its [`TokenProvider`] on every (re)connect and never
//! reuses a token. Implement the trait, pass an async closure, or use one of
//! the ready-made providers:
//!
//! * `AppEndpoint` (feature `app-endpoint`): the app's own backend
//!   endpoint (the two-endpoint pattern: browsers and phones never hold an
//!   org key);
//! * `OrgKeyProvider` (feature `admin`): mints a client key with an org API
//!   key (server-side code only);
//! * `StreamTokenProvider` (feature `admin`): fetches a single-use
//!   `pub_tok_…` stream token;
//! * [`StaticToken`]: one fixed credential (tests, org keys on a server).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
#[cfg(any(feature = "admin", feature = "app-endpoint", test))]
use std::time::Duration;

use futures_util::future::{FutureExt as _, WeakShared};

#[cfg(feature = "admin")]
use crate::admin::AdminClient;
use crate::error::{Error, ProviderFailure};
use crate::token::Credential;

/// A boxed, sendable future, as [`TokenProvider::token`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Supplies a fresh credential for a context.
///
/// Any `Fn(String) -> impl Future<Output = Result<T, E>>` where `T:
/// Into<Credential>` and `E` is an error (or a string) is a provider, so an
/// async closure works. Returning a [`tokenrelay::Error`](crate::Error)
/// keeps its class: `Forbidden` or `NotFound` (this user may not have this
/// context) end the connection instead of being retried.
///
/// ```no_run
/// # use tokenrelay::Client;
/// let client = Client::builder("wss://relay.example.com/ws")
///     .token_provider(|context_id: String| async move {
///         // Ask your backend for a client key for `context_id`.
///         Ok::<_, std::io::Error>(format!("key-for-{context_id}"))
///     })
///     .build();
/// ```
pub trait TokenProvider: Send + Sync + 'static {
    /// A fresh credential for `context_id`.
    fn token<'a>(&'a self, context_id: &'a str) -> BoxFuture<'a, Result<Credential, Error>>;
}

impl<F, Fut, T, E> TokenProvider for F
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Into<Credential>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn token<'a>(&'a self, context_id: &'a str) -> BoxFuture<'a, Result<Credential, Error>> {
        let fut = self(context_id.to_owned());
        Box::pin(async move {
            fut.await
                .map(Into::into)
                .map_err(|e| match e.into().downcast::<Error>() {
                    Ok(ours) => *ours,
                    // Any other error carries no class: by the rule every
                    // binding uses, a (retried) provider failure.
                    Err(other) => Error::from_provider(ProviderFailure::new(other.to_string())),
                })
        })
    }
}

/// One fixed credential. Fine for an org key used from a server, or tests;
/// a browser or phone should use a provider that mints short-lived keys.
#[derive(Debug, Clone)]
pub struct StaticToken(pub Credential);

impl TokenProvider for StaticToken {
    fn token<'a>(&'a self, _context_id: &'a str) -> BoxFuture<'a, Result<Credential, Error>> {
        let c = self.0.clone();
        Box::pin(async move { Ok(c) })
    }
}

/// The app's own token endpoint (the seed's "Generate Client Token"
/// endpoint): `POST url` with `{"<context_field>": context_id}` and the
/// configured headers (the app's own session auth); the token is read from
/// the JSON field `token_field` of the answer.
///
/// ```no_run
/// # use tokenrelay::AppEndpoint;
/// let provider = AppEndpoint::new("https://myapp.example.com/api/get-client-token")
///     .header("Authorization", "Bearer user-session-token")
///     .token_field("clientToken")
///     .context_field("contextId");
/// ```
#[cfg(feature = "app-endpoint")]
#[cfg_attr(docsrs, doc(cfg(feature = "app-endpoint")))]
#[derive(Clone)]
pub struct AppEndpoint {
    url: String,
    headers: Vec<(String, String)>,
    token_field: String,
    context_field: String,
    http: Option<reqwest::Client>,
    timeout: Duration,
    network: crate::NetworkOptions,
}

#[cfg(feature = "app-endpoint")]
impl std::fmt::Debug for AppEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppEndpoint")
            .field("url", &self.url)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("token_field", &self.token_field)
            .field("context_field", &self.context_field)
            .finish()
    }
}

#[cfg(feature = "app-endpoint")]
impl AppEndpoint {
    /// An endpoint at `url`, reading `clientToken` and sending `contextId`
    /// (the seed's names).
    pub fn new(url: impl Into<String>) -> Self {
        AppEndpoint {
            url: url.into(),
            headers: Vec::new(),
            token_field: "clientToken".into(),
            context_field: "contextId".into(),
            http: None,
            timeout: Duration::from_secs(20),
            network: crate::NetworkOptions::new(),
        }
    }

    /// Trusts the CA certificate(s) in `pem` on top of the platform's
    /// roots, for an endpoint whose certificate a private CA issued. An
    /// invalid PEM fails the first token fetch with [`Error::Config`]
    /// (which ends the connection). Not used with
    /// [`http_client`](Self::http_client).
    #[must_use]
    pub fn add_root_certificate_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.network = self.network.add_root_certificate_pem(pem);
        self
    }

    /// Allows an `http://` URL whose host is not loopback. Off by default:
    /// the fetch fails with [`Error::Config`], since the app's session
    /// credentials and the minted key would cross the network unencrypted.
    #[must_use]
    pub fn allow_insecure(mut self, allow: bool) -> Self {
        self.network = self.network.allow_insecure(allow);
        self
    }

    /// Sends the requests through this proxy (`http://[user:pass@]host:port`)
    /// instead of the environment's (`HTTPS_PROXY`, `HTTP_PROXY`,
    /// `ALL_PROXY`, `NO_PROXY`).
    #[must_use]
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.network = self.network.proxy(url);
        self
    }

    /// Connects directly, ignoring the proxy environment variables.
    #[must_use]
    pub fn no_proxy(mut self) -> Self {
        self.network = self.network.no_proxy();
        self
    }

    /// Every network setting at once (replacing those set before): trusted
    /// roots, `allow_insecure`, the proxy.
    #[must_use]
    pub fn network(mut self, options: crate::NetworkOptions) -> Self {
        self.network = options;
        self
    }

    /// The HTTP client of one fetch: the one given, else one with the
    /// crate's TLS roots (and the extra ones) and the proxy setting.
    fn http(&self) -> Result<reqwest::Client, Error> {
        let url = reqwest::Url::parse(&self.url).map_err(|e| Error::Config {
            message: format!("invalid token endpoint URL: {e}"),
        })?;
        crate::client::tls::check_plaintext(
            url.scheme(),
            url.host_str().unwrap_or_default(),
            self.network.allow_insecure,
            "AppEndpoint::allow_insecure(true)",
        )?;
        if let Some(c) = &self.http {
            return Ok(c.clone());
        }
        self.network
            .http_builder()?
            .timeout(self.timeout)
            .build()
            .map_err(|e| Error::Config {
                message: format!(
                    "cannot build the HTTP client: {}",
                    crate::client::network::error_chain(&e)
                ),
            })
    }

    /// Adds a header to every request (for example the app's session auth).
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The JSON field of the answer that holds the token.
    #[must_use]
    pub fn token_field(mut self, field: impl Into<String>) -> Self {
        self.token_field = field.into();
        self
    }

    /// The JSON field of the request that carries the context id.
    #[must_use]
    pub fn context_field(mut self, field: impl Into<String>) -> Self {
        self.context_field = field.into();
        self
    }

    /// Uses this HTTP client instead of a default one.
    #[must_use]
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    async fn fetch(&self, context_id: &str) -> Result<Credential, Error> {
        let http = self.http()?;
        let mut body = serde_json::Map::new();
        body.insert(self.context_field.clone(), context_id.into());
        let mut req = http.post(&self.url).json(&body);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(|e| Error::TokenProvider {
            message: format!("token endpoint unreachable: {}", e.without_url()),
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| Error::TokenProvider {
            message: format!("token endpoint answer unreadable: {}", e.without_url()),
        })?;
        if !(200..300).contains(&status) {
            // The app's backend refused (its user is logged out, say):
            // classified by its status and `code` as every binding
            // classifies a provider that failed, so a 403 ends the
            // connection and a 500 is a retried `Server` error.
            let body = serde_json::from_str::<serde_json::Value>(&text).ok();
            let field = |name: &str| {
                body.as_ref()
                    .and_then(|v| v.get(name))
                    .and_then(|e| e.as_str())
                    .map(str::to_owned)
            };
            let message =
                field("error").unwrap_or_else(|| format!("token endpoint answered HTTP {status}"));
            return Err(Error::from_provider(
                ProviderFailure::new(message)
                    .status(Some(status))
                    .code(field("code")),
            ));
        }
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|_| Error::TokenProvider {
                message: "token endpoint answered with something other than JSON".into(),
            })?;
        match json.get(&self.token_field).and_then(|t| t.as_str()) {
            Some(t) if !t.is_empty() => Ok(Credential::access_token(t)),
            _ => Err(Error::TokenProvider {
                message: format!("token endpoint answer has no string `{}`", self.token_field),
            }),
        }
    }
}

#[cfg(feature = "app-endpoint")]
impl TokenProvider for AppEndpoint {
    fn token<'a>(&'a self, context_id: &'a str) -> BoxFuture<'a, Result<Credential, Error>> {
        Box::pin(self.fetch(context_id))
    }
}

/// Mints a client key scoped to the context with an org API key
/// (`POST /generate-api-key`). **Server-side only**: the org key must never
/// reach a browser or phone.
#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
#[derive(Debug, Clone)]
pub struct OrgKeyProvider {
    admin: AdminClient,
    org_id: String,
    ttl_seconds: Option<u64>,
}

#[cfg(feature = "admin")]
impl OrgKeyProvider {
    /// Mints keys for `org_id` with `admin` (an [`AdminClient`] holding the
    /// org API key).
    pub fn new(admin: AdminClient, org_id: impl Into<String>) -> Self {
        OrgKeyProvider {
            admin,
            org_id: org_id.into(),
            ttl_seconds: None,
        }
    }

    /// Lifetime of minted keys (the server's default is 120 s).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl_seconds = Some(ttl.as_secs().max(1));
        self
    }
}

#[cfg(feature = "admin")]
impl TokenProvider for OrgKeyProvider {
    fn token<'a>(&'a self, context_id: &'a str) -> BoxFuture<'a, Result<Credential, Error>> {
        Box::pin(async move {
            let key = self
                .admin
                .generate_client_key(&self.org_id, Some(context_id), self.ttl_seconds)
                .await?;
            Ok(Credential::access_token(key.token))
        })
    }
}

/// Fetches a single-use stream token (`GET /api/v1/token?ttl=`) and opens
/// the socket with it (`/ws?token=`), for servers with `stream_token`.
#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
#[derive(Debug, Clone)]
pub struct StreamTokenProvider {
    admin: AdminClient,
    ttl: Option<u32>,
}

#[cfg(feature = "admin")]
impl StreamTokenProvider {
    /// Fetches tokens with `admin` (an [`AdminClient`] holding an API key).
    pub fn new(admin: AdminClient) -> Self {
        StreamTokenProvider { admin, ttl: None }
    }

    /// Token lifetime in seconds, 1–300 (server default 60).
    #[must_use]
    pub fn ttl(mut self, seconds: u32) -> Self {
        self.ttl = Some(seconds);
        self
    }
}

#[cfg(feature = "admin")]
impl TokenProvider for StreamTokenProvider {
    fn token<'a>(&'a self, _context_id: &'a str) -> BoxFuture<'a, Result<Credential, Error>> {
        Box::pin(async move {
            let t = self.admin.stream_token(self.ttl).await?;
            Ok(Credential::stream_token(t.token))
        })
    }
}

/// A fetch as the single-flight map keeps it: weakly, so a fetch every
/// asker gave up on (a `connect()` that settled, a connection closed) is
/// dropped, and the provider's call with it, instead of running on for
/// nobody (and being joined by the next ask, long after).
type WeakFetch = WeakShared<BoxFuture<'static, Result<Credential, Error>>>;

/// Makes concurrent asks for the same context share one call to the inner
/// provider (several connections reconnecting at once after a network blip
/// cost the app's backend one request, not many). The call lives as long
/// as someone waits for it.
pub(crate) struct SingleFlight {
    inner: Arc<dyn TokenProvider>,
    in_flight: Arc<Mutex<HashMap<String, WeakFetch>>>,
}

impl SingleFlight {
    /// Wraps `inner`.
    pub(crate) fn new(inner: Arc<dyn TokenProvider>) -> Self {
        SingleFlight {
            inner,
            in_flight: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl TokenProvider for SingleFlight {
    fn token<'a>(&'a self, context_id: &'a str) -> BoxFuture<'a, Result<Credential, Error>> {
        let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = map.get(context_id).and_then(WeakShared::upgrade) {
            return Box::pin(running);
        }
        let inner = self.inner.clone();
        let ctx = context_id.to_owned();
        let entries = self.in_flight.clone();
        let fut: BoxFuture<'static, Result<Credential, Error>> = Box::pin(async move {
            let result = inner.token(&ctx).await;
            entries
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&ctx);
            result
        });
        let shared = fut.shared();
        // `None` only for a future already complete, which this is not.
        if let Some(weak) = shared.downgrade() {
            map.insert(context_id.to_owned(), weak);
        }
        Box::pin(shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn closures_are_providers_and_errors_become_typed() {
        let ok = |ctx: String| async move { Ok::<_, std::io::Error>(format!("k-{ctx}")) };
        assert_eq!(ok.token("c").await.unwrap().secret(), "k-c");
        let bad = |_ctx: String| async move { Err::<String, _>("backend down") };
        assert!(matches!(
            bad.token("c").await,
            Err(Error::TokenProvider { message }) if message == "backend down"
        ));
    }

    #[tokio::test]
    async fn concurrent_asks_share_one_fetch() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let slow = move |ctx: String| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, std::io::Error>(format!("k-{ctx}"))
            }
        };
        let sf = SingleFlight::new(Arc::new(slow));
        let (a, b, c) = tokio::join!(sf.token("x"), sf.token("x"), sf.token("y"));
        assert_eq!(a.unwrap().secret(), "k-x");
        assert_eq!(b.unwrap().secret(), "k-x");
        assert_eq!(c.unwrap().secret(), "k-y");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Once settled, the next ask fetches again: tokens are never reused.
        sf.token("x").await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_fetch_nobody_waits_for_any_more_is_dropped() {
        /// Counts its drops: the provider call it sits in was dropped.
        struct Dropped(Arc<AtomicUsize>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (calls, drops) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (counter, dropped) = (calls.clone(), drops.clone());
        let hangs = move |_ctx: String| {
            counter.fetch_add(1, Ordering::SeqCst);
            let guard = Dropped(dropped.clone());
            async move {
                let _guard = guard;
                std::future::pending::<Result<String, std::io::Error>>().await
            }
        };
        let sf = SingleFlight::new(Arc::new(hangs));
        // Two askers share the call; it runs until both have given up.
        let (mut a, b) = (sf.token("x"), sf.token("x"));
        assert!((&mut a).now_or_never().is_none());
        drop(b);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "dropped while one still waits"
        );
        drop(a);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "left running for nobody");
        // The next ask calls the provider again rather than joining it.
        let mut c = sf.token("x");
        assert!((&mut c).now_or_never().is_none());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
