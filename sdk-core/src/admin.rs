//! The admin REST client: one async method per route of `docs/protocol.md`
//! §4, for an app's backend (org API key), a person's session (user
//! access token) or a CLI (user API key).
//!
//! Every answer that is not 2xx becomes a typed [`Error`] carrying the HTTP
//! status, the server's `code` and, for 429, the `retry-after` delay and the
//! `x-ratelimit-*` headers. The credential is sent only in the
//! `Authorization` header, marked sensitive, and never formatted: neither
//! `Debug` nor any error message contains it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::network::error_chain;
use crate::client::tls::check_plaintext;
use crate::error::{Error, ProtocolError, RateLimit};
use crate::redact::Redacted;
use crate::rest::{
    Agent, AgentList, ApiKeyInfo, ApiKeyList, ChatReply, ChatRequest, Context, CreatedUserApiKey,
    Credentials, ErrorBody, GenerateApiKeyRequest, GeneratedApiKey, KeyType, LoginResponse,
    NewAgent, NewClientKey, NewContext, NewUserApiKey, PublishableKey, RevokedApiKey,
    StreamTokenResponse, User, UserApiKey, UserApiKeyList,
};
use crate::NetworkOptions;

/// How long a request may take, connect to last byte, unless configured.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times a request answered 429 or 5xx is sent again by default
/// (so up to three attempts), as openai-python does.
pub(crate) const DEFAULT_MAX_RETRIES: u32 = 2;

/// The longest `retry-after` a retry waits for. A server asking for longer
/// gets its error returned at once (it carries the delay): a backend's
/// request handler should not hang for minutes inside the client.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Error bodies that are not JSON (a proxy's HTML page) are cut to this many
/// bytes in the error message.
const MAX_ERROR_TEXT: usize = 512;

/// An async client of the REST surface.
///
/// Cheap to clone (the connection pool is shared). Send the credential the
/// route needs: an org API key for agents, contexts and keys; a user access
/// token or user API key for `/auth/*`; any API key for stream tokens.
/// [`with_credential`](AdminClient::with_credential) switches credential
/// while keeping the pool, for example after [`login`](AdminClient::login).
///
/// ```no_run
/// use tokenrelay::AdminClient;
/// use tokenrelay::rest::{NewAgent, NewContext};
///
/// # async fn run() -> Result<(), tokenrelay::Error> {
/// let org_key = std::env::var("ORG_API_KEY").unwrap_or_default();
/// let admin = AdminClient::new("https://relay.example", org_key)?;
/// let agent = admin
///     .create_agent(&NewAgent::new("Helper", "Answers questions", "Be brief."))
///     .await?;
/// let context = admin.create_context(&NewContext::new(&agent.agent_id)).await?;
/// // Hand this short-lived key to the browser, never the org key.
/// let key = admin
///     .generate_client_key(&agent.org_id, Some(&context.context_id), None)
///     .await?;
/// # let _ = key;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base_url: Url,
    auth: Auth,
    timeout: Duration,
    max_retries: u32,
    headers: Arc<HeaderMap>,
}

/// The `Authorization` header to send, decided once when the credential is
/// set, so a bad credential is reported by every call instead of panicking.
#[derive(Clone)]
enum Auth {
    /// Empty credential: send no header (register, login, open servers).
    None,
    /// `Bearer <credential>`, marked sensitive so HTTP layers never log it.
    Bearer(HeaderValue),
    /// The credential has bytes an HTTP header cannot carry.
    Invalid,
}

impl Auth {
    fn new(credential: &str) -> Auth {
        let credential = credential.trim();
        // Accept a credential pasted with its scheme rather than doubling it.
        let credential = match credential.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") => credential[7..].trim(),
            _ => credential,
        };
        if credential.is_empty() {
            return Auth::None;
        }
        match HeaderValue::from_str(&format!("Bearer {credential}")) {
            Ok(mut value) => {
                value.set_sensitive(true);
                Auth::Bearer(value)
            }
            Err(_) => Auth::Invalid,
        }
    }
}

impl fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let credential = match self.auth {
            Auth::None => "none",
            Auth::Bearer(_) => "<redacted>",
            Auth::Invalid => "<invalid>",
        };
        // Header values may be secrets too (an `x-api-key`); show names only.
        let header_names: Vec<&str> = self.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("AdminClient")
            .field("base_url", &display_url(&self.base_url))
            .field("credential", &format_args!("{credential}"))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("extra_headers", &header_names)
            .finish()
    }
}

/// A single-use stream token with the rate-limit state the server reported
/// alongside it. `Debug` redacts the token.
#[derive(Clone, PartialEq, Eq)]
pub struct StreamToken {
    /// The token (`pub_tok_…`): open one WebSocket with `/ws?token=…`.
    pub token: String,
    /// Its lifetime in seconds.
    pub ttl: u32,
    /// `x-ratelimit-limit` / `x-ratelimit-remaining`, when sent.
    pub rate_limit: Option<RateLimit>,
}

impl fmt::Debug for StreamToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamToken")
            .field("token", &Redacted(&self.token))
            .field("ttl", &self.ttl)
            .field("rate_limit", &self.rate_limit)
            .finish()
    }
}

/// A decoded answer and the rate-limit headers that came with it.
struct Answer<T> {
    body: T,
    rate_limit: Option<RateLimit>,
}

impl AdminClient {
    /// A client of the server at `base_url` (`https://host` or
    /// `https://host/prefix`) sending `credential` as a bearer token, with
    /// the default timeout. An empty credential sends no `Authorization`.
    ///
    /// Fails with [`Error::Config`] when the URL is not an absolute http(s)
    /// URL.
    pub fn new(
        base_url: impl AsRef<str>,
        credential: impl Into<String>,
    ) -> Result<AdminClient, Error> {
        AdminClient::builder()
            .base_url(base_url)
            .credential(credential)
            .build()
    }

    /// A builder, for a timeout, a custom `reqwest::Client` or extra headers.
    pub fn builder() -> AdminClientBuilder {
        AdminClientBuilder::default()
    }

    /// The same client (pool, URL, timeout, headers) with another credential,
    /// for example the `access_token` returned by [`login`](Self::login).
    /// A credential that cannot be sent in a header makes every call fail
    /// with [`Error::Config`].
    pub fn with_credential(&self, credential: impl Into<String>) -> AdminClient {
        AdminClient {
            auth: Auth::new(&credential.into()),
            ..self.clone()
        }
    }

    /// The base URL requests are sent under.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    // -- 4.1 agents ---------------------------------------------------------

    /// `POST /agent`: creates an agent in the credential's org.
    pub async fn create_agent(&self, agent: &NewAgent) -> Result<Agent, Error> {
        self.post(&["agent"], agent).await
    }

    /// `GET /agent/{id}`.
    pub async fn get_agent(&self, agent_id: &str) -> Result<Agent, Error> {
        self.get(&["agent", non_empty_id("agent id", agent_id)?])
            .await
    }

    /// `GET /agents`: the agents the credential may see.
    pub async fn list_agents(&self) -> Result<Vec<Agent>, Error> {
        let list: AgentList = self.get(&["agents"]).await?;
        Ok(list.agents)
    }

    /// `DELETE /agent/{id}`.
    pub async fn delete_agent(&self, agent_id: &str) -> Result<(), Error> {
        self.delete(&["agent", non_empty_id("agent id", agent_id)?])
            .await
    }

    // -- 4.1 contexts and chat ------------------------------------------------

    /// `POST /context`: starts a conversation with an agent. For a public
    /// agent the answer carries a `client_api_key` scoped to the context.
    pub async fn create_context(&self, context: &NewContext) -> Result<Context, Error> {
        self.post(&["context"], context).await
    }

    /// `GET /context/{id}`: the context with its full history.
    pub async fn get_context(&self, context_id: &str) -> Result<Context, Error> {
        self.get(&["context", non_empty_id("context id", context_id)?])
            .await
    }

    /// `DELETE /context/{id}`.
    pub async fn delete_context(&self, context_id: &str) -> Result<(), Error> {
        self.delete(&["context", non_empty_id("context id", context_id)?])
            .await
    }

    /// `POST /chat`: sends `message` and waits for the whole reply (no
    /// streaming; use a WebSocket connection for tokens as they come).
    pub async fn chat(&self, context_id: &str, message: &str) -> Result<ChatReply, Error> {
        let body = ChatRequest {
            context_id: context_id.to_owned(),
            message: message.to_owned(),
        };
        self.post(&["chat"], &body).await
    }

    // -- 4.1 org and client API keys -----------------------------------------

    /// `POST /generate-api-key`: mints an org or client key.
    pub async fn generate_api_key(
        &self,
        request: &GenerateApiKeyRequest,
    ) -> Result<GeneratedApiKey, Error> {
        self.post(&["generate-api-key"], request).await
    }

    /// Mints a client key of `org_id` for a browser: scoped to `context_id`
    /// when given, living `ttl_seconds` (the server's default, 120 s, when
    /// `None`). Its `token` is what a token provider returns.
    pub async fn generate_client_key(
        &self,
        org_id: &str,
        context_id: Option<&str>,
        ttl_seconds: Option<u64>,
    ) -> Result<GeneratedApiKey, Error> {
        let request = GenerateApiKeyRequest {
            context_id: context_id.map(str::to_owned),
            ttl_seconds,
            ..GenerateApiKeyRequest::client(org_id)
        };
        self.generate_api_key(&request).await
    }

    /// `GET /api-keys` (reference server): the org's keys of one kind
    /// (`KeyType::Org` or `KeyType::Client`), newest first, at most `limit`
    /// (the server's cap, 1000, when `None`). Metadata only: a key cannot be
    /// shown again after it was minted.
    pub async fn list_api_keys(
        &self,
        kind: KeyType,
        limit: Option<u32>,
    ) -> Result<Vec<ApiKeyInfo>, Error> {
        let mut request = Request::new(Method::GET, &["api-keys"]);
        let kind = match kind {
            KeyType::Org => "org",
            KeyType::Client => "client",
            KeyType::Other => {
                return Err(Error::Config {
                    message: "list_api_keys lists org or client keys".into(),
                })
            }
        };
        request.query.push(("kind", kind.to_owned()));
        if let Some(limit) = limit {
            request.query.push(("limit", limit.to_string()));
        }
        let list: ApiKeyList = self.send(request).await?.body;
        Ok(list.api_keys)
    }

    /// `DELETE /api-key/{id}` (reference server): revokes an org or client
    /// key of the org on the spot, and every key it minted; sockets opened
    /// with any of them close with 4001.
    pub async fn revoke_api_key(&self, api_key_id: &str) -> Result<RevokedApiKey, Error> {
        let path = ["api-key", non_empty_id("key id", api_key_id)?];
        Ok(self.send(Request::new(Method::DELETE, &path)).await?.body)
    }

    // -- 4.2 people and their API keys ---------------------------------------

    /// `POST /auth/register`: creates an account. Sends no credential.
    pub async fn register(&self, credentials: &Credentials) -> Result<User, Error> {
        let request = Request::new(Method::POST, &["auth", "register"])
            .json(credentials)?
            .anonymous();
        Ok(self.send(request).await?.body)
    }

    /// `POST /auth/login`: exchanges a username and password for a user
    /// access token. Sends no credential. Continue with
    /// `client.with_credential(&login.access_token)`.
    pub async fn login(&self, credentials: &Credentials) -> Result<LoginResponse, Error> {
        let request = Request::new(Method::POST, &["auth", "login"])
            .json(credentials)?
            .anonymous();
        Ok(self.send(request).await?.body)
    }

    /// `GET /auth/me`: the account the credential belongs to.
    pub async fn me(&self) -> Result<User, Error> {
        self.get(&["auth", "me"]).await
    }

    /// `POST /auth/api-keys`: creates a user API key (`sk_live_…`). The
    /// returned `key` is shown this once. A taken nickname is
    /// [`Error::InvalidRequest`] with status 409.
    pub async fn create_user_api_key(&self, nickname: &str) -> Result<CreatedUserApiKey, Error> {
        let body = NewUserApiKey {
            nickname: nickname.to_owned(),
        };
        self.post(&["auth", "api-keys"], &body).await
    }

    /// `GET /auth/api-keys`: the user's keys, without the keys themselves.
    pub async fn list_user_api_keys(&self) -> Result<Vec<UserApiKey>, Error> {
        let list: UserApiKeyList = self.get(&["auth", "api-keys"]).await?;
        Ok(list.api_keys)
    }

    /// `DELETE /auth/api-keys/{id}`: revokes a user API key at once.
    pub async fn delete_user_api_key(&self, key_id: &str) -> Result<(), Error> {
        self.delete(&["auth", "api-keys", non_empty_id("API key id", key_id)?])
            .await
    }

    // -- 4.3 stream tokens, 4.4 publishable keys -----------------------------

    /// `GET /api/v1/token?ttl=N`: a single-use stream token living `ttl`
    /// seconds (1..=300; the server's default, 60, when `None`), with the
    /// rate-limit headers of the answer. No credit left is
    /// [`Error::PaymentRequired`].
    pub async fn stream_token(&self, ttl: Option<u32>) -> Result<StreamToken, Error> {
        let mut request = Request::new(Method::GET, &["api", "v1", "token"]);
        if let Some(ttl) = ttl {
            request.query.push(("ttl", ttl.to_string()));
        }
        let answer: Answer<StreamTokenResponse> = self.send(request).await?;
        if answer.body.token.is_empty() {
            return Err(Error::Protocol(ProtocolError::UnexpectedShape {
                message: "the stream token answer has no `token`".into(),
            }));
        }
        Ok(StreamToken {
            token: answer.body.token,
            ttl: answer.body.ttl,
            rate_limit: answer.rate_limit,
        })
    }

    /// `POST /client-key`: creates (or rotates) the org's publishable key,
    /// bound to the given browser origins.
    pub async fn create_client_key<I, S>(&self, allowed_origins: I) -> Result<PublishableKey, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let body = NewClientKey {
            allowed_origins: allowed_origins.into_iter().map(Into::into).collect(),
        };
        self.post(&["client-key"], &body).await
    }

    /// `DELETE /client-key`: revokes the org's publishable key.
    pub async fn delete_client_key(&self) -> Result<(), Error> {
        self.delete(&["client-key"]).await
    }

    // -- plumbing ---------------------------------------------------------------

    async fn get<T: DeserializeOwned>(&self, path: &[&str]) -> Result<T, Error> {
        Ok(self.send(Request::new(Method::GET, path)).await?.body)
    }

    async fn post<T: DeserializeOwned, B: Serialize>(
        &self,
        path: &[&str],
        body: &B,
    ) -> Result<T, Error> {
        let request = Request::new(Method::POST, path).json(body)?;
        Ok(self.send(request).await?.body)
    }

    async fn delete(&self, path: &[&str]) -> Result<(), Error> {
        // The body (`{success}` or `{message}`) says nothing the status did
        // not; only an explicit `success: false` matters, and `send` checks it.
        let _: Answer<IgnoredAny> = self.send(Request::new(Method::DELETE, path)).await?;
        Ok(())
    }

    /// Sends `request`, again after a 429 or a 5xx answer, up to
    /// `max_retries` times: after the `retry-after` the server asked for, or
    /// after an exponential, jittered backoff when it did not say.
    async fn send<T: DeserializeOwned>(&self, request: Request) -> Result<Answer<T>, Error> {
        let mut attempt = 0;
        loop {
            let failure = match self.send_once(&request).await {
                Ok(answer) => return Ok(answer),
                Err(failure) => failure,
            };
            let delay = match retry_delay(&failure, attempt) {
                Some(delay) if attempt < self.max_retries => delay,
                _ => return Err(failure.error),
            };
            attempt += 1;
            tracing::debug!(
                request = %format!("{} /{}", request.method, request.path.join("/")),
                attempt,
                delay_ms = delay.as_millis() as u64,
                "admin request retried"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn send_once<T: DeserializeOwned>(
        &self,
        request: &Request,
    ) -> Result<Answer<T>, Failure> {
        let url = self.url(&request.path, &request.query)?;
        // Names the route in timeout errors; ids are not secrets.
        let what = format!("{} /{}", request.method, request.path.join("/"));
        let mut builder = self
            .http
            .request(request.method.clone(), url)
            .timeout(self.timeout)
            .headers((*self.headers).clone())
            .header(ACCEPT, "application/json");
        if request.authorized {
            match &self.auth {
                Auth::Bearer(value) => builder = builder.header(AUTHORIZATION, value.clone()),
                Auth::None => {}
                Auth::Invalid => {
                    return Err(Error::Config {
                        message: "the credential contains characters an HTTP header cannot carry"
                            .into(),
                    }
                    .into())
                }
            }
        }
        if let Some(body) = &request.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }

        let response = builder
            .send()
            .await
            .map_err(|e| transport_error(e, &what, self.timeout))?;
        let status = response.status();
        let rate_limit = parse_rate_limit(response.headers());
        let retry_after = parse_retry_after(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(e, &what, self.timeout))?;
        tracing::debug!(request = %what, status = status.as_u16(), "admin request");

        if !status.is_success() {
            return Err(Failure {
                error: error_from_body(status, &bytes).with_rate_limit(retry_after, rate_limit),
                status: Some(status),
                retry_after,
            });
        }
        let body = decode_success(status, &bytes)
            .map_err(|e| e.with_rate_limit(retry_after, rate_limit))?;
        Ok(Answer { body, rate_limit })
    }

    /// `base_url` + the route's segments (each percent-encoded, so an id can
    /// never change the route) + the query.
    fn url<S: AsRef<str>>(
        &self,
        path: &[S],
        query: &[(&'static str, String)],
    ) -> Result<Url, Error> {
        let mut url = self.base_url.clone();
        {
            let mut segments = url.path_segments_mut().map_err(|()| Error::Config {
                message: "the base URL cannot carry a path".into(),
            })?;
            segments.pop_if_empty().extend(path);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (k, v.as_str())));
        }
        Ok(url)
    }
}

/// One request, before it meets the client's URL, headers and credential.
struct Request {
    method: Method,
    path: Vec<String>,
    query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    authorized: bool,
}

impl Request {
    fn new(method: Method, path: &[&str]) -> Request {
        Request {
            method,
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            query: Vec::new(),
            body: None,
            authorized: true,
        }
    }

    fn json<B: Serialize + ?Sized>(mut self, body: &B) -> Result<Request, Error> {
        // The REST types are plain structs; serializing them cannot fail, but
        // a caller-built `Value` could in theory, so no panic here.
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Config {
            message: format!("cannot encode the request body: {e}"),
        })?;
        self.body = Some(bytes);
        Ok(self)
    }

    /// Sends no `Authorization` (register and login need none, and sending
    /// one would only expose it).
    fn anonymous(mut self) -> Request {
        self.authorized = false;
        self
    }
}

/// An id that would make the path end in `/` addresses another route.
fn non_empty_id<'a>(what: &str, id: &'a str) -> Result<&'a str, Error> {
    if id.is_empty() {
        Err(Error::Config {
            message: format!("the {what} is empty"),
        })
    } else {
        Ok(id)
    }
}

/// Decodes a 2xx body. An empty body counts as `{}` (some servers answer a
/// delete with 204); a body with an explicit `success: false` is an error
/// even with a 2xx status (some servers report failures that way).
fn decode_success<T: DeserializeOwned>(status: StatusCode, bytes: &[u8]) -> Result<T, Error> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let value: Value = serde_json::from_slice(text).map_err(|e| {
        Error::Protocol(ProtocolError::InvalidJson {
            message: format!(
                "HTTP {} answer is not JSON ({e}): {}",
                status.as_u16(),
                snippet(bytes)
            ),
        })
    })?;
    if value.get("success") == Some(&Value::Bool(false)) {
        let body = ErrorBody::deserialize(&value).unwrap_or_default();
        return Err(body.to_error(Some(status.as_u16())));
    }
    T::deserialize(value).map_err(|e| {
        Error::Protocol(ProtocolError::UnexpectedShape {
            message: format!(
                "HTTP {} answer has an unexpected shape: {e}",
                status.as_u16()
            ),
        })
    })
}

/// The typed error of a non-2xx answer: the JSON error body when there is
/// one, otherwise the status with the start of whatever text came back.
fn error_from_body(status: StatusCode, bytes: &[u8]) -> Error {
    let code = status.as_u16();
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) if !body.error.trim().is_empty() || body.message.is_some() => {
            body.to_error(Some(code))
        }
        Ok(body) => ErrorBody {
            error: status_text(status),
            ..body
        }
        .to_error(Some(code)),
        Err(_) => {
            let text = snippet(bytes);
            let message = if text.is_empty() {
                status_text(status)
            } else {
                format!("{}: {text}", status_text(status))
            };
            Error::from_server(&message, None, Some(code))
        }
    }
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

/// The start of a body as text, cut on a character boundary.
fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.len() <= MAX_ERROR_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_ERROR_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn transport_error(e: reqwest::Error, what: &str, timeout: Duration) -> Error {
    if e.is_timeout() {
        return Error::Timeout {
            what: what.to_owned(),
            after: timeout,
        };
    }
    if e.is_builder() {
        return Error::Config {
            message: error_chain(&e),
        };
    }
    if let Some(tls) = crate::client::tls::find_tls_error(&e) {
        return Error::Tls {
            message: format!("{tls} ({})", error_chain(&e)),
        };
    }
    Error::Transport {
        message: error_chain(&e),
    }
}

/// Both `x-ratelimit-*` headers, or nothing.
fn parse_rate_limit(headers: &HeaderMap) -> Option<RateLimit> {
    let number =
        |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    Some(RateLimit {
        limit: number("x-ratelimit-limit")?,
        remaining: number("x-ratelimit-remaining")?,
    })
}

/// A failed attempt, with what decides whether to try again.
struct Failure {
    error: Error,
    /// The HTTP status, when the server answered.
    status: Option<StatusCode>,
    /// The `retry-after` it sent.
    retry_after: Option<Duration>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure {
            error,
            status: None,
            retry_after: None,
        }
    }
}

/// How long to wait before attempt `attempt + 1` after `failure`, or `None`
/// when it must not be retried. Only 429 and 5xx answers are: the request
/// reached a server that said "not now", and a 5xx of a gateway usually
/// means it never reached the app. A transport failure or a timeout is not
/// retried, because a POST may have been applied before the socket died.
fn retry_delay(failure: &Failure, attempt: u32) -> Option<Duration> {
    let status = failure.status?;
    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
        return None;
    }
    match failure.retry_after {
        Some(after) if after > MAX_RETRY_AFTER => None,
        Some(after) => Some(after),
        None => Some(retry_backoff(attempt)),
    }
}

/// 0.5 s, 1 s, 2 s, … capped at 8 s, each cut by up to a quarter at random
/// so that many clients refused at once do not come back at once.
fn retry_backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(500).saturating_mul(1u32 << attempt.min(4));
    base.mul_f64(1.0 - fastrand::f64() * 0.25)
}

/// `retry-after` in seconds (the HTTP-date form is ignored: no server of
/// this protocol sends it).
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let seconds = text.parse::<f64>().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// The URL without a password, for `Debug`.
fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Only fails for URLs that cannot have a password at all.
        let _ = shown.set_password(Some("redacted"));
    }
    shown.to_string()
}

/// Builds an [`AdminClient`]. `Debug` never shows the credential or the
/// values of extra headers.
#[derive(Clone)]
#[must_use = "a builder does nothing until `build()`"]
pub struct AdminClientBuilder {
    base_url: Option<String>,
    credential: String,
    timeout: Duration,
    max_retries: u32,
    http: Option<reqwest::Client>,
    headers: HeaderMap,
    header_error: Option<String>,
    network: NetworkOptions,
}

impl Default for AdminClientBuilder {
    fn default() -> Self {
        AdminClientBuilder {
            base_url: None,
            credential: String::new(),
            timeout: DEFAULT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            http: None,
            headers: HeaderMap::new(),
            header_error: None,
            network: NetworkOptions::new(),
        }
    }
}

impl fmt::Debug for AdminClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("AdminClientBuilder")
            .field("base_url", &self.base_url)
            .field("credential", &Redacted(&self.credential))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("custom_http_client", &self.http.is_some())
            .field("custom_roots", &self.network.extra_roots.certs.len())
            .field("allow_insecure", &self.network.allow_insecure)
            .field("extra_headers", &header_names)
            .finish()
    }
}

impl AdminClientBuilder {
    /// The server's base URL, `https://host` or `https://host/prefix`.
    /// Required.
    pub fn base_url(mut self, base_url: impl AsRef<str>) -> Self {
        self.base_url = Some(base_url.as_ref().to_owned());
        self
    }

    /// The credential sent as `Authorization: Bearer …`; empty (the default)
    /// sends none.
    pub fn credential(mut self, credential: impl Into<String>) -> Self {
        self.credential = credential.into();
        self
    }

    /// Limit for a whole request, connect to last byte (default 30 s), per
    /// attempt. Exceeding it is [`Error::Timeout`] (not retried).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many times a request answered 429 or 5xx is sent again (default
    /// 2, as openai-python; 0 never retries). Each retry waits for the
    /// answer's `retry-after` when it has one (a `retry-after` over
    /// 60 s is not waited for: the error, which carries it, is returned), else
    /// 0.5 s, 1 s, 2 s, … (capped at 8 s, jittered). The last answer's
    /// error is returned when every attempt failed.
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// Use this `reqwest::Client` (its proxy, TLS and pool settings) instead
    /// of one built with the crate's rustls configuration. The timeout and
    /// extra headers still apply per request.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Trusts the CA certificate(s) in `pem` (one or more `BEGIN
    /// CERTIFICATE` sections) on top of the platform's roots, for a server
    /// whose certificate a private CA issued. A PEM without a certificate,
    /// or not valid, makes [`build`](Self::build) fail with
    /// [`Error::Config`]. Not used with [`http_client`](Self::http_client).
    pub fn add_root_certificate_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.network = self.network.add_root_certificate_pem(pem);
        self
    }

    /// Allows an `http://` base URL whose host is not loopback
    /// (`localhost`, 127.0.0.0/8, `::1`). Off by default: the credential
    /// would cross the network unencrypted, so [`build`](Self::build)
    /// refuses it with [`Error::Config`].
    pub fn allow_insecure(mut self, allow: bool) -> Self {
        self.network = self.network.allow_insecure(allow);
        self
    }

    /// Sends every request through this proxy (`http://[user:pass@]host:port`;
    /// `https://` URLs are tunnelled with `CONNECT`), whatever the
    /// environment says. Without it the client follows `HTTPS_PROXY`,
    /// `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`. Not used with
    /// [`http_client`](Self::http_client).
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.network = self.network.proxy(url);
        self
    }

    /// Connects directly, ignoring the proxy environment variables.
    pub fn no_proxy(mut self) -> Self {
        self.network = self.network.no_proxy();
        self
    }

    /// Every network setting at once (replacing those set before): trusted
    /// roots, `allow_insecure`, the proxy. The roots and the proxy are not
    /// used with [`http_client`](Self::http_client).
    pub fn network(mut self, options: NetworkOptions) -> Self {
        self.network = options;
        self
    }

    /// Adds a header to every request. An invalid name or value makes
    /// [`build`](Self::build) fail with [`Error::Config`].
    pub fn header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        let name = name.as_ref();
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value.as_ref()),
        ) {
            (Ok(name), Ok(mut value)) => {
                // Extra headers often carry secrets too (gateway keys).
                value.set_sensitive(true);
                self.headers.append(name, value);
            }
            _ => {
                // The value is deliberately left out of the message.
                self.header_error
                    .get_or_insert_with(|| format!("invalid extra header `{name}`"));
            }
        }
        self
    }

    /// The client. Fails with [`Error::Config`] when the base URL is missing
    /// or not an absolute http(s) URL, is `http://` to a host that is not
    /// loopback without [`allow_insecure`](Self::allow_insecure), an extra
    /// header, a custom root certificate or the proxy URL is invalid, or
    /// the HTTP client cannot be built.
    pub fn build(self) -> Result<AdminClient, Error> {
        if let Some(message) = self.header_error {
            return Err(Error::Config { message });
        }
        let base_url = parse_base_url(self.base_url.as_deref())?;
        check_plaintext(
            base_url.scheme(),
            base_url.host_str().unwrap_or_default(),
            self.network.allow_insecure,
            "allow_insecure(true)",
        )?;
        // Refused even with a custom HTTP client, as `build` documents.
        self.network.extra_roots.checked()?;
        let http = match self.http {
            Some(http) => http,
            None => self
                .network
                .http_builder()?
                .user_agent(concat!("tokenrelay/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| Error::Config {
                    message: format!("cannot build the HTTP client: {}", error_chain(&e)),
                })?,
        };
        Ok(AdminClient {
            http,
            base_url,
            auth: Auth::new(&self.credential),
            timeout: self.timeout,
            max_retries: self.max_retries,
            headers: Arc::new(self.headers),
        })
    }
}

fn parse_base_url(base_url: Option<&str>) -> Result<Url, Error> {
    let config = |message: String| Error::Config { message };
    let text = base_url
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| config("no base URL set".into()))?;
    let mut url =
        Url::parse(text).map_err(|e| config(format!("invalid base URL `{text}`: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(config(format!(
            "the base URL must be an absolute http(s) URL, got `{}`",
            display_url(&url)
        )));
    }
    // Routes are appended to the path; a query or fragment would end up
    // in the middle of every request URL.
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn rate_limit_headers_are_parsed_together() {
        let both = headers(&[
            ("x-ratelimit-limit", "100"),
            ("x-ratelimit-remaining", " 7 "),
        ]);
        assert_eq!(
            parse_rate_limit(&both),
            Some(RateLimit {
                limit: 100,
                remaining: 7
            })
        );
        assert_eq!(
            parse_rate_limit(&headers(&[("x-ratelimit-limit", "100")])),
            None
        );
        assert_eq!(
            parse_rate_limit(&headers(&[
                ("x-ratelimit-limit", "many"),
                ("x-ratelimit-remaining", "1")
            ])),
            None
        );
    }

    #[test]
    fn retry_after_accepts_seconds_only() {
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "12")])),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "1.5")])),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after(&headers(&[(
                "retry-after",
                "Wed, 21 Oct 2015 07:28:00 GMT"
            )])),
            None
        );
        assert_eq!(parse_retry_after(&headers(&[("retry-after", "-1")])), None);
    }

    #[test]
    fn credentials_get_one_bearer_prefix() {
        let Auth::Bearer(v) = Auth::new("bearer abc") else {
            panic!()
        };
        assert_eq!(v.to_str().unwrap(), "Bearer abc");
        assert!(v.is_sensitive());
        assert!(matches!(Auth::new("  "), Auth::None));
        assert!(matches!(Auth::new("a\nb"), Auth::Invalid));
    }

    #[test]
    fn urls_keep_the_prefix_and_encode_ids() {
        let client = AdminClient::builder()
            .base_url("http://h.example/prefix/?q=1#f")
            .credential("k")
            .allow_insecure(true)
            .build()
            .unwrap();
        let url = client
            .url(&["context", "a b/../c"], &[("ttl", "5".into())])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://h.example/prefix/context/a%20b%2F..%2Fc?ttl=5"
        );
    }

    #[test]
    fn long_error_text_is_cut_on_a_char_boundary() {
        let text = "é".repeat(MAX_ERROR_TEXT);
        let cut = snippet(text.as_bytes());
        assert!(cut.ends_with('…'));
        assert!(cut.len() <= MAX_ERROR_TEXT + '…'.len_utf8());
    }
}
