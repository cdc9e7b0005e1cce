//! TLS and networks (issue #16): a private CA (rcgen) and a TLS-terminating
//! forwarder (tokio-rustls) in front of the real reference server, and a
//! small `CONNECT` proxy that counts its tunnels. The SDK must refuse the
//! forwarder's certificate until told about the CA, then stream through
//! it, directly and through the proxy; a proxy refusing the tunnel is a
//! typed error; plaintext to a host that is not loopback is refused
//! unless allowed.
//!
//! The proxy is set with the builders' `proxy()` option, not
//! `HTTPS_PROXY`: tests run in parallel in one process, and the
//! environment is the process's. The environment's parsing (`NO_PROXY`
//! matching and all) is unit-tested in sdk-core/src/client/proxy.rs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokenrelay::{AdminClient, Client, Error, ResponseStatus};
use tokenrelay_e2e::{Harness, WAIT};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;

/// A private CA and a certificate it issued for `localhost` and 127.0.0.1.
struct Pki {
    ca_pem: String,
    server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tokenrelay test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("the CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().expect("a server key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server_cert = params
        .signed_by(&server_key, &issuer)
        .expect("the server certificate");
    Pki {
        ca_pem: ca_cert.pem(),
        server_chain: vec![server_cert.der().clone()],
        server_key: rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
    }
}

/// Terminates TLS with the PKI's server certificate on 127.0.0.1:0 and
/// forwards the plaintext to `upstream` (the reference server, which
/// serves REST and the WebSocket on one port). Returns its port.
async fn tls_forwarder(pki: &Pki, upstream: SocketAddr) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(pki.server_chain.clone(), pki.server_key.clone_key())
        .expect("the server certificate is usable");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends here.
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    port
}

/// What the test proxy answers to `CONNECT`.
#[derive(Clone, Copy)]
enum ProxyMode {
    /// Opens the tunnel.
    Tunnel,
    /// Answers this status and closes.
    Refuse(u16),
}

/// Each `CONNECT`'s target and `Proxy-Authorization`, in order.
type Tunnels = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A `CONNECT` proxy on 127.0.0.1:0 that records each request's target
/// and `Proxy-Authorization`.
struct Proxy {
    url: String,
    seen: Tunnels,
}

impl Proxy {
    async fn start(mode: ProxyMode) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve_proxy(socket, mode, log.clone()));
            }
        });
        Proxy { url, seen }
    }

    fn tunnels(&self) -> Vec<(String, Option<String>)> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve_proxy(mut socket: TcpStream, mode: ProxyMode, seen: Tunnels) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let Ok(byte) = socket.read_u8().await else {
            return;
        };
        head.push(byte);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default().to_owned();
    let auth = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("proxy-authorization")
            .then(|| value.trim().to_owned())
    });
    let mut parts = request_line.split(' ');
    let (Some("CONNECT"), Some(target)) = (parts.next(), parts.next()) else {
        let _ = socket
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    };
    seen.lock().unwrap().push((target.to_owned(), auth));
    match mode {
        ProxyMode::Refuse(status) => {
            let answer = format!(
                "HTTP/1.1 {status} Refused\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
        ProxyMode::Tunnel => {
            let Ok(mut upstream) = TcpStream::connect(target).await else {
                let _ = socket
                    .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                    .await;
                return;
            };
            if socket
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await;
        }
    }
}

/// A harness with the TLS forwarder in front of it: the forwarder's port.
async fn tls_setup() -> (Harness, Pki, u16) {
    let h = Harness::start().await;
    let pki = pki();
    let port = tls_forwarder(&pki, h.server.addr()).await;
    (h, pki, port)
}

#[tokio::test]
async fn wss_with_a_private_ca_needs_the_ca_then_streams() {
    let (h, pki, port) = tls_setup().await;
    let context_id = h.context("[tokens=3]", false).await;
    let url = format!("wss://localhost:{port}/ws");

    // Without the CA: the certificate is refused, typed, and at once (a
    // refused certificate before any attachment is not retried).
    let (builder, _) = h.client_at(&url);
    let client = builder
        .no_proxy()
        .connect_timeout(WAIT)
        .build()
        .expect("a client");
    let started = std::time::Instant::now();
    let err = client.connect(&context_id).await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert_eq!(err.kind(), tokenrelay::ErrorKind::Transport);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not retried until the deadline"
    );

    // With it: the reply streams.
    let (builder, calls) = h.client_at(&url);
    let client = builder
        .add_root_certificate_pem(&pki.ca_pem)
        .no_proxy()
        .build()
        .expect("a client");
    let conn = client
        .connect(&context_id)
        .await
        .expect("connected over TLS");
    let reply = conn
        .ask("[tokens=3] hello over TLS")
        .await
        .expect("a reply");
    assert_eq!(reply.status, ResponseStatus::Complete);
    assert!(!reply.text.is_empty());
    assert!(calls.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    conn.close().await;
}

#[tokio::test]
async fn the_admin_client_trusts_a_custom_ca() {
    let (h, pki, port) = tls_setup().await;
    let base = format!("https://localhost:{port}");

    let untrusting = AdminClient::builder()
        .base_url(&base)
        .credential(&h.org_key)
        .no_proxy()
        .build()
        .expect("a client");
    let err = untrusting.list_agents().await.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");

    let admin = AdminClient::builder()
        .base_url(&base)
        .credential(&h.org_key)
        .add_root_certificate_pem(pki.ca_pem.as_bytes())
        .no_proxy()
        .build()
        .expect("a client");
    h.context("[tokens=1]", false).await;
    let agents = admin.list_agents().await.expect("agents over TLS");
    assert_eq!(agents.len(), 1);
}

#[tokio::test]
async fn sockets_and_rest_go_through_a_connect_proxy() {
    let (h, pki, port) = tls_setup().await;
    let proxy = Proxy::start(ProxyMode::Tunnel).await;
    let context_id = h.context("[tokens=3]", false).await;

    let (builder, _) = h.client_at(&format!("wss://localhost:{port}/ws"));
    // Credentials in the proxy URL become `Proxy-Authorization: Basic`.
    let proxy_url = proxy.url.replace("http://", "http://user:p%40ss@");
    let client = builder
        .add_root_certificate_pem(&pki.ca_pem)
        .proxy(&proxy_url)
        .build()
        .expect("a client");
    let conn = client
        .connect(&context_id)
        .await
        .expect("connected through the proxy");
    let reply = conn
        .ask("[tokens=3] hello through the proxy")
        .await
        .expect("a reply");
    assert_eq!(reply.status, ResponseStatus::Complete);
    conn.close().await;
    let tunnels = proxy.tunnels();
    assert_eq!(tunnels.len(), 1, "{tunnels:?}");
    assert_eq!(tunnels[0].0, format!("localhost:{port}"));
    // base64("user:p@ss")
    assert_eq!(tunnels[0].1.as_deref(), Some("Basic dXNlcjpwQHNz"));

    // The admin client (reqwest) tunnels https:// the same way.
    let admin = AdminClient::builder()
        .base_url(format!("https://localhost:{port}"))
        .credential(&h.org_key)
        .add_root_certificate_pem(&pki.ca_pem)
        .proxy(&proxy.url)
        .build()
        .expect("a client");
    admin.list_agents().await.expect("agents through the proxy");
    assert_eq!(proxy.tunnels().len(), 2);
    assert_eq!(proxy.tunnels()[1].0, format!("localhost:{port}"));
}

#[tokio::test]
async fn a_proxy_refusing_the_tunnel_is_a_typed_error() {
    let (h, pki, port) = tls_setup().await;
    let context_id = h.context("[tokens=1]", false).await;
    let url = format!("wss://localhost:{port}/ws");

    // 407 before any attachment: at once.
    let proxy = Proxy::start(ProxyMode::Refuse(407)).await;
    let (builder, _) = h.client_at(&url);
    let client = builder
        .add_root_certificate_pem(&pki.ca_pem)
        .proxy(&proxy.url)
        .connect_timeout(WAIT)
        .build()
        .expect("a client");
    let err = client.connect(&context_id).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Proxy {
                status: Some(407),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(proxy.tunnels().len(), 1);

    // 500: retried with backoff until the connect deadline, which reports it.
    let proxy = Proxy::start(ProxyMode::Refuse(500)).await;
    let (builder, _) = h.client_at(&url);
    let client = builder
        .add_root_certificate_pem(&pki.ca_pem)
        .proxy(&proxy.url)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("a client");
    let err = client.connect(&context_id).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Proxy {
                status: Some(500),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn plaintext_is_for_loopback_unless_allowed() {
    let provider = |_ctx: String| async { Ok::<_, Error>("k".to_owned()) };
    for url in [
        "ws://example.com/ws",
        "ws://10.0.0.1:8080/ws",
        "WS://server:9000/ws",
    ] {
        let err = Client::builder(url)
            .token_provider(provider)
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{url}: {err:?}");
        assert!(err.to_string().contains("allow_insecure"), "{err}");
        Client::builder(url)
            .token_provider(provider)
            .allow_insecure(true)
            .build()
            .expect("allowed when asked");
    }
    for url in [
        "ws://127.0.0.1:1/ws",
        "ws://localhost:1/ws",
        "ws://[::1]:1/ws",
        "wss://example.com/ws",
    ] {
        Client::builder(url)
            .token_provider(provider)
            .build()
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }
    let err = AdminClient::new("http://example.com", "k").unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    AdminClient::builder()
        .base_url("http://example.com")
        .allow_insecure(true)
        .build()
        .expect("allowed when asked");
    AdminClient::new("http://127.0.0.1:1", "k").expect("loopback");
    AdminClient::new("https://example.com", "k").expect("https");

    // Bad custom roots and proxy URLs are configuration errors at build.
    let err = Client::builder("wss://example.com/ws")
        .token_provider(provider)
        .add_root_certificate_pem("not a certificate")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    let err = AdminClient::builder()
        .base_url("https://example.com")
        .add_root_certificate_pem(b"-----BEGIN CERTIFICATE-----\n!\n-----END CERTIFICATE-----\n")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    let err = Client::builder("wss://example.com/ws")
        .token_provider(provider)
        .proxy("socks5://127.0.0.1:1080")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
}
