//! [`TokenProvider`]: where fresh credentials come from, implemented by the
//! app in Kotlin (a `suspend fun`) or Swift (an `async func`), or taken
//! ready-made ([`app_endpoint_token_provider`]).

use std::collections::HashMap;
use std::sync::Arc;

use tokenrelay::{AppEndpoint, BoxFuture};
use tokenrelay::{Credential, Error};

use crate::error::TokenRelayError;

/// Supplies a fresh client key for a context. The connection calls it on
/// every (re)connect, one call at a time per context, and never reuses a
/// key.
///
/// Throw `TokenRelayException.Forbidden` / `.NotFound` (Kotlin) or
/// `TokenRelayError.forbidden` / `.notFound` (Swift) when this user may not
/// have the context: the connection then ends instead of retrying. Anything
/// else thrown is a transient failure, retried with backoff.
#[uniffi::export(with_foreign)]
#[async_trait::async_trait]
pub trait TokenProvider: Send + Sync {
    /// A fresh client key (a JWT) for `context_id`.
    async fn token(&self, context_id: String) -> Result<String, TokenRelayError>;
}

/// The core's view of a provider given across the boundary.
pub(crate) struct ForeignProvider(pub Arc<dyn TokenProvider>);

impl tokenrelay::TokenProvider for ForeignProvider {
    fn token<'a>(&'a self, context_id: &'a str) -> BoxFuture<'a, Result<Credential, Error>> {
        let provider = self.0.clone();
        let context_id = context_id.to_owned();
        Box::pin(async move {
            provider
                .token(context_id)
                .await
                .map(Credential::access_token)
                .map_err(Error::from)
        })
    }
}

/// The app's own backend endpoint (the two-endpoint pattern: the phone
/// never holds an org key): `POST url` with `{"<context_field>": id}` and
/// `headers` (the app's session auth); the key is read from the JSON field
/// `token_field` of the answer. Defaults: `clientToken` and `contextId`.
///
/// `root_certificate_pem` adds a CA (PEM) to the platform's roots;
/// `allow_insecure` allows `http://` to a host that is not loopback
/// (otherwise the connect fails with `Config`); `proxy`
/// (`http://[user:pass@]host:port`) replaces the proxy environment
/// variables, `no_proxy` ignores them.
#[uniffi::export(default(
    root_certificate_pem = None,
    allow_insecure = false,
    proxy = None,
    no_proxy = false
))]
// One argument per setting, as the foreign languages' named arguments.
#[allow(clippy::too_many_arguments)]
pub fn app_endpoint_token_provider(
    url: String,
    headers: HashMap<String, String>,
    token_field: Option<String>,
    context_field: Option<String>,
    root_certificate_pem: Option<String>,
    allow_insecure: bool,
    proxy: Option<String>,
    no_proxy: bool,
) -> Arc<dyn TokenProvider> {
    let mut endpoint = AppEndpoint::new(url).network(tokenrelay::NetworkOptions::from_parts(
        root_certificate_pem,
        allow_insecure,
        proxy,
        no_proxy,
    ));
    for (name, value) in headers {
        endpoint = endpoint.header(name, value);
    }
    if let Some(f) = token_field {
        endpoint = endpoint.token_field(f);
    }
    if let Some(f) = context_field {
        endpoint = endpoint.context_field(f);
    }
    Arc::new(AppEndpointProvider(endpoint))
}

/// [`app_endpoint_token_provider`]'s implementation, in Rust.
struct AppEndpointProvider(AppEndpoint);

#[async_trait::async_trait]
impl TokenProvider for AppEndpointProvider {
    async fn token(&self, context_id: String) -> Result<String, TokenRelayError> {
        use tokenrelay::TokenProvider as _;
        // The endpoint's HTTP call runs on the tokio runtime the connection
        // already uses.
        let credential = self.0.token(&context_id).await?;
        Ok(credential.secret().to_owned())
    }
}
