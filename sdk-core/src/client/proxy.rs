//! HTTP proxies for the WebSocket: which proxy a socket goes through
//! (the builder's setting, else `HTTPS_PROXY` / `ALL_PROXY` and
//! `NO_PROXY`), and the `CONNECT` tunnel through it, over which TLS and
//! the WebSocket handshake then run as they would on a direct socket.
//!
//! The REST clients (reqwest) read the same variables themselves.

use std::net::IpAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::error::Error;

/// Which proxy the builder was told to use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum ProxySetting {
    /// `HTTPS_PROXY`/`https_proxy`, else `ALL_PROXY`/`all_proxy`, for
    /// `wss://` URLs, unless `NO_PROXY`/`no_proxy` names the host. Loopback
    /// hosts and `ws://` URLs are always direct.
    #[default]
    FromEnv,
    /// This proxy for every socket (parsed at build time).
    Explicit(ProxyTarget),
    /// Always direct.
    Disabled,
}

/// An HTTP proxy: where it listens and the `Proxy-Authorization` value
/// its URL's user and password make. `Debug` hides the credentials.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ProxyTarget {
    pub(crate) host: String,
    pub(crate) port: u16,
    authorization: Option<String>,
}

impl std::fmt::Debug for ProxyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "credentials",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl ProxyTarget {
    /// Parses `http://[user:pass@]host[:port][/]` (a URL without a scheme
    /// is taken as `http://`, as curl does; the port defaults to 80).
    /// Other schemes (`https://`, `socks5://`) are not supported.
    pub(crate) fn parse(url: &str) -> Result<ProxyTarget, Error> {
        let config = |message: String| Error::Config { message };
        let url = url.trim();
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(config(format!(
                    "proxy scheme `{scheme}://` is not supported (only http:// proxies, which tunnel with CONNECT)"
                )))
            }
            None => url,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport)
            .ok_or_else(|| config("the proxy URL has no valid host[:port]".to_owned()))?;
        let authorization = userinfo.map(|u| {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            let plain = format!("{}:{}", percent_decode(user), percent_decode(pass));
            format!("Basic {}", base64_encode(plain.as_bytes()))
        });
        Ok(ProxyTarget {
            host,
            port: port.unwrap_or(80),
            authorization,
        })
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; the host without brackets.
fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return None,
        };
        (host, port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() || host.contains(['@', ' ', '/']) {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0)?),
        None => None,
    };
    Some((host.to_owned(), port))
}

/// The proxy a socket to `host` goes through, if any. `env` reads an
/// environment variable (a parameter, so tests need not touch the
/// process's environment).
pub(crate) fn select(
    setting: &ProxySetting,
    secure: bool,
    host: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<ProxyTarget>, Error> {
    match setting {
        ProxySetting::Disabled => Ok(None),
        ProxySetting::Explicit(target) => Ok(Some(target.clone())),
        ProxySetting::FromEnv => {
            // Plaintext sockets are for local tests (or a network the app
            // called trusted with allow_insecure); loopback never leaves
            // the machine. Neither goes to a proxy from the environment.
            if !secure || super::tls::is_loopback_host(host) {
                return Ok(None);
            }
            let var = |names: [&str; 2]| {
                names
                    .into_iter()
                    .find_map(&env)
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
            };
            let Some(url) =
                var(["HTTPS_PROXY", "https_proxy"]).or_else(|| var(["ALL_PROXY", "all_proxy"]))
            else {
                return Ok(None);
            };
            if let Some(list) = var(["NO_PROXY", "no_proxy"]) {
                if no_proxy_matches(&list, host) {
                    return Ok(None);
                }
            }
            match ProxyTarget::parse(&url) {
                Ok(target) => Ok(Some(target)),
                Err(e) => {
                    // A `socks5://` ALL_PROXY meant for other tools: connect
                    // directly, as before this setting existed, but say so.
                    tracing::warn!(error = %e, "ignoring the proxy from the environment");
                    Ok(None)
                }
            }
        }
    }
}

/// Whether `host` is excluded by a `NO_PROXY` list: comma- or
/// space-separated entries, each `*` (everything), a host name (matching
/// itself and its subdomains; a leading `.` or `*.` is allowed), an IP
/// address or an IP network in CIDR form (`10.0.0.0/8`). A `:port` on an
/// entry is ignored.
pub(crate) fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let host_ip = host.parse::<IpAddr>().ok();
    list.split([',', ' ', '\t', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            if let Some((net, bits)) = entry.split_once('/') {
                return match (host_ip, net.parse::<IpAddr>(), bits.parse::<u8>()) {
                    (Some(ip), Ok(net), Ok(bits)) => in_network(ip, net, bits),
                    _ => false,
                };
            }
            // A bare IPv6 address has colons that are not a port.
            let entry = match entry.parse::<IpAddr>() {
                Ok(_) => entry.to_owned(),
                Err(_) => match split_host_port(entry) {
                    Some((h, _)) => h,
                    None => entry.to_owned(),
                },
            };
            if let (Some(ip), Ok(e)) = (host_ip, entry.parse::<IpAddr>()) {
                return ip == e;
            }
            let entry = entry
                .trim_start_matches('*')
                .trim_start_matches('.')
                .trim_end_matches('.')
                .to_ascii_lowercase();
            !entry.is_empty()
                && (host == entry
                    || (host.len() > entry.len()
                        && host.ends_with(&entry)
                        && host.as_bytes()[host.len() - entry.len() - 1] == b'.'))
        })
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// The largest proxy answer head read before giving up on it.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Opens a TCP connection to `proxy` and asks it for a tunnel to
/// `host:port`. Returns the stream once the proxy answered 2xx, positioned
/// at the first byte from the destination. Bounded by `timeout`.
pub(crate) async fn tunnel(
    proxy: &ProxyTarget,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, Error> {
    match tokio::time::timeout(timeout, tunnel_inner(proxy, host, port)).await {
        Ok(result) => result,
        Err(_) => Err(Error::Proxy {
            status: None,
            message: format!(
                "no answer from the proxy {}:{} within {}ms",
                proxy.host,
                proxy.port,
                timeout.as_millis()
            ),
        }),
    }
}

async fn tunnel_inner(proxy: &ProxyTarget, host: &str, port: u16) -> Result<TcpStream, Error> {
    let mut stream = TcpStream::connect((proxy.host.as_str(), proxy.port))
        .await
        .map_err(|e| Error::Transport {
            message: format!("cannot reach the proxy {}:{}: {e}", proxy.host, proxy.port),
        })?;
    let _ = stream.set_nodelay(true);
    let authority = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = &proxy.authorization {
        request.push_str("Proxy-Authorization: ");
        request.push_str(auth);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let io = |e: std::io::Error| Error::Proxy {
        status: None,
        message: format!(
            "the tunnel through {}:{} failed: {e}",
            proxy.host, proxy.port
        ),
    };
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    // Read byte by byte up to the blank line: what follows belongs to the
    // destination (it speaks only after our TLS hello, but a buffered read
    // must not be able to swallow it either way).
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_RESPONSE_HEAD {
            return Err(Error::Proxy {
                status: None,
                message: format!("the proxy's answer head is over {MAX_RESPONSE_HEAD} bytes"),
            });
        }
        let byte = stream.read_u8().await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::Proxy {
                    status: None,
                    message: "the proxy closed the connection without answering CONNECT".into(),
                }
            } else {
                io(e)
            }
        })?;
        head.push(byte);
    }
    let status_line = head
        .split(|b| *b == b'\n')
        .next()
        .map(|l| String::from_utf8_lossy(l).trim().to_owned())
        .unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().and_then(|s| s.parse::<u16>().ok());
    let reason = parts.next().unwrap_or_default();
    match status {
        Some(s) if version.starts_with("HTTP/") && (200..300).contains(&s) => Ok(stream),
        Some(407) if version.starts_with("HTTP/") => Err(Error::Proxy {
            status: Some(407),
            message: if proxy.authorization.is_some() {
                "the proxy refused the credentials in its URL".into()
            } else {
                "the proxy requires credentials (http://user:pass@host:port)".into()
            },
        }),
        Some(s) if version.starts_with("HTTP/") => Err(Error::Proxy {
            status: Some(s),
            message: format!("the proxy refused the tunnel to {authority}: {s} {reason}"),
        }),
        _ => Err(Error::Proxy {
            status: None,
            message: "the proxy's answer to CONNECT is not HTTP".into(),
        }),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding (RFC 4648 §4), for `Basic` credentials.
fn base64_encode(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn chosen(vars: &[(&str, &str)], secure: bool, host: &str) -> Option<(String, u16)> {
        select(&ProxySetting::FromEnv, secure, host, env(vars))
            .unwrap()
            .map(|t| (t.host, t.port))
    }

    #[test]
    fn proxy_urls_parse() {
        let t = ProxyTarget::parse("http://proxy.corp:3128").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.authorization),
            ("proxy.corp", 3128, None)
        );
        let t = ProxyTarget::parse("proxy.corp").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("proxy.corp", 80));
        let t = ProxyTarget::parse("HTTP://[::1]:8080/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 8080));
        let t = ProxyTarget::parse("http://alice:s%40cret@p:1").unwrap();
        // base64("alice:s@cret")
        assert_eq!(t.authorization.as_deref(), Some("Basic YWxpY2U6c0BjcmV0"));
        assert!(!format!("{t:?}").contains("YWxp"));
        for bad in [
            "socks5://p:1",
            "https://p:1",
            "http://",
            "http://p:0",
            "http://p:x",
            "http://[::1",
        ] {
            assert!(
                matches!(ProxyTarget::parse(bad), Err(Error::Config { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
        }
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }

    #[test]
    fn the_environment_picks_the_proxy() {
        let p = Some(("p".to_owned(), 3128));
        assert_eq!(
            chosen(&[("HTTPS_PROXY", "http://p:3128")], true, "relay.example"),
            p
        );
        assert_eq!(
            chosen(&[("https_proxy", "p:3128")], true, "relay.example"),
            p
        );
        assert_eq!(
            chosen(&[("ALL_PROXY", "http://p:3128")], true, "relay.example"),
            p
        );
        // HTTPS_PROXY before ALL_PROXY.
        assert_eq!(
            chosen(
                &[
                    ("ALL_PROXY", "http://q:1"),
                    ("HTTPS_PROXY", "http://p:3128")
                ],
                true,
                "r.example"
            ),
            p
        );
        // Not for ws://, not for loopback, not when empty or unsupported.
        assert_eq!(
            chosen(&[("HTTPS_PROXY", "http://p:3128")], false, "relay.example"),
            None
        );
        assert_eq!(
            chosen(&[("HTTPS_PROXY", "http://p:3128")], true, "localhost"),
            None
        );
        assert_eq!(
            chosen(&[("HTTPS_PROXY", "http://p:3128")], true, "127.0.0.1"),
            None
        );
        assert_eq!(chosen(&[("HTTPS_PROXY", " ")], true, "relay.example"), None);
        assert_eq!(
            chosen(&[("ALL_PROXY", "socks5://p:1")], true, "relay.example"),
            None
        );
        assert_eq!(chosen(&[], true, "relay.example"), None);
        // NO_PROXY.
        let vars = [
            ("HTTPS_PROXY", "http://p:3128"),
            ("no_proxy", ".internal, 10.0.0.0/8"),
        ];
        assert_eq!(chosen(&vars, true, "relay.internal"), None);
        assert_eq!(chosen(&vars, true, "10.1.2.3"), None);
        assert_eq!(chosen(&vars, true, "relay.example"), p);
        // An explicit setting wins over everything; Disabled is direct.
        let explicit = ProxySetting::Explicit(ProxyTarget::parse("http://e:1").unwrap());
        let t = select(&explicit, false, "localhost", env(&vars))
            .unwrap()
            .unwrap();
        assert_eq!((t.host.as_str(), t.port), ("e", 1));
        assert_eq!(
            select(&ProxySetting::Disabled, true, "x.example", env(&vars)).unwrap(),
            None
        );
    }

    #[test]
    fn no_proxy_entries() {
        let m = no_proxy_matches;
        assert!(m("*", "anything.example"));
        assert!(m("example.com", "example.com"));
        assert!(m("example.com", "api.example.com"));
        assert!(m(".example.com", "api.example.com"));
        assert!(m("*.example.com", "api.example.com"));
        assert!(m(".example.com", "example.com"));
        assert!(m("EXAMPLE.com:443", "example.COM"));
        assert!(!m("example.com", "badexample.com"));
        assert!(!m("example.com", "example.com.evil"));
        assert!(m("a.test, b.test", "b.test"));
        assert!(m("a.test b.test", "b.test"));
        assert!(m("192.168.1.5", "192.168.1.5"));
        assert!(!m("192.168.1.5", "192.168.1.6"));
        assert!(m("192.168.0.0/16", "192.168.77.1"));
        assert!(!m("192.168.0.0/16", "192.169.0.1"));
        assert!(m("0.0.0.0/0", "8.8.8.8"));
        assert!(m("fd00::/8", "[fd12::1]"));
        assert!(m("::1", "[::1]"));
        assert!(!m("fd00::/8", "10.0.0.1"));
        assert!(!m("", "example.com"));
        assert!(!m(" , ", "example.com"));
        assert!(!m("10.0.0.0/33", "10.0.0.1"));
    }
}
