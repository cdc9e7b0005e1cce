//! A tiny canned HTTP/1.1 responder on 127.0.0.1:0 for client tests: it
//! records what it was sent and answers every request the same way (or,
//! with [`Responder::start_sequence`], in a given order).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokenrelay::AdminClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the responder answers to every request.
#[derive(Clone)]
pub(crate) struct Canned {
    pub status: u16,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: String,
}

impl Canned {
    pub(crate) fn json(status: u16, body: Value) -> Canned {
        Canned {
            status,
            headers: vec![("content-type", "application/json")],
            body: body.to_string(),
        }
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: &'static str) -> Canned {
        self.headers.push((name, value));
        self
    }
}

/// A request as the responder received it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("request body is JSON")
    }
}

pub(crate) struct Responder {
    pub base_url: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Responder {
    /// Serves `canned` to every connection on 127.0.0.1, one request per
    /// connection (`connection: close` keeps the parsing trivial).
    pub(crate) async fn start(canned: Canned) -> Responder {
        Responder::start_sequence(vec![canned]).await
    }

    /// Answers the n-th connection with `answers[n]`, and every one after
    /// the last with the last.
    pub(crate) async fn start_sequence(answers: Vec<Canned>) -> Responder {
        assert!(!answers.is_empty());
        let served = Arc::new(AtomicUsize::new(0));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let n = served.fetch_add(1, Ordering::SeqCst);
                let canned = answers[n.min(answers.len() - 1)].clone();
                let log = log.clone();
                tokio::spawn(async move {
                    if let Some(request) = answer(stream, &canned).await {
                        log.lock().unwrap().push(request);
                    }
                });
            }
        });
        Responder { base_url, requests }
    }

    /// A client of this responder that never retries, so that a test of
    /// how one answer maps to an error sees exactly one request.
    pub(crate) fn client(&self, credential: &str) -> AdminClient {
        AdminClient::builder()
            .base_url(&self.base_url)
            .credential(credential)
            .max_retries(0)
            .build()
            .unwrap()
    }

    pub(crate) fn only_request(&self) -> Recorded {
        let requests = self.requests.lock().unwrap();
        assert_eq!(requests.len(), 1, "{requests:?}");
        requests[0].clone()
    }
}

pub(crate) async fn answer(mut stream: TcpStream, canned: &Canned) -> Option<Recorded> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();

    let mut response = format!(
        "HTTP/1.1 {} Canned\r\ncontent-length: {}\r\nconnection: close\r\n",
        canned.status,
        canned.body.len()
    );
    for (name, value) in &canned.headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(&canned.body);
    stream.write_all(response.as_bytes()).await.ok()?;
    let _ = stream.shutdown().await;
    Some(Recorded {
        method,
        target,
        headers,
        body,
    })
}
