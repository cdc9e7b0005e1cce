//! A TCP load balancer for the cluster tests and the scenario runner's
//! cluster mode: what a deployment puts in front of its instances, small
//! enough to steer from a test.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};

/// A TCP load balancer: each new connection goes to the next backend that
/// is up (round robin); a backend can be taken out, which also cuts the
/// connections it carries (as a balancer whose health check failed, or an
/// instance that is gone).
///
/// Dropping it stops it and cuts every connection it carries.
pub struct Balancer {
    addr: SocketAddr,
    state: Arc<Mutex<Pool>>,
    accept: tokio::task::AbortHandle,
}

#[derive(Default)]
struct Pool {
    backends: Vec<(SocketAddr, bool)>,
    next: usize,
    /// The connections carried, by backend.
    carried: Vec<(usize, tokio::task::AbortHandle)>,
    /// How many connections each backend was given.
    served: Vec<usize>,
}

impl Balancer {
    /// Listens on `127.0.0.1:0` in front of `backends`, all in rotation.
    ///
    /// # Panics
    /// If it cannot bind.
    pub async fn start(backends: &[SocketAddr]) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(Mutex::new(Pool {
            backends: backends.iter().map(|a| (*a, true)).collect(),
            ..Pool::default()
        }));
        let pool = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let picked = {
                    let mut p = pool.lock().unwrap();
                    let n = p.backends.len();
                    let start = p.next;
                    let found = (0..n).map(|i| (start + i) % n).find(|&i| p.backends[i].1);
                    if let Some(i) = found {
                        p.next = i + 1;
                        p.served.resize(n, 0);
                        p.served[i] += 1;
                    }
                    found.map(|i| (i, p.backends[i].0))
                };
                let Some((i, backend)) = picked else {
                    continue;
                };
                let pipe = tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                pool.lock().unwrap().carried.push((i, pipe.abort_handle()));
            }
        });
        Balancer {
            addr,
            state,
            accept: accept.abort_handle(),
        }
    }

    /// The WebSocket URL a client uses: the balancer's.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// The REST base URL a backend uses: the balancer's.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many connections each backend was given, in the order they
    /// were added.
    pub fn served(&self) -> Vec<usize> {
        let p = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut served = p.served.clone();
        served.resize(p.backends.len(), 0);
        served
    }

    /// A new backend, in rotation at once; its index.
    pub fn add(&self, backend: SocketAddr) -> usize {
        let mut p = self.state.lock().unwrap();
        p.backends.push((backend, true));
        p.backends.len() - 1
    }

    /// Backend `i` gets no new connection; those it carries go on (until
    /// the instance closes them, as a drain does).
    pub fn stop_routing(&self, i: usize) {
        self.state.lock().unwrap().backends[i].1 = false;
    }

    /// Backend `i` gets no new connection, and those it carries are cut.
    pub fn take_out(&self, i: usize) {
        let mut p = self.state.lock().unwrap();
        p.backends[i].1 = false;
        p.carried.retain(|(b, pipe)| {
            if *b == i {
                pipe.abort();
            }
            *b != i
        });
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.accept.abort();
        for (_, pipe) in self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .carried
            .drain(..)
        {
            pipe.abort();
        }
    }
}
