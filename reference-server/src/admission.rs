//! Who may hold a connection: counts of open connections per key (a peer
//! address, a client address, an org), each under a cap, released when
//! the guard drops however the connection ends.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};

use axum::http::HeaderMap;

use crate::conversation::redis::{Fallback, RedisBackend, SHARED_TIMEOUT};

/// Open connections per key. A key with no connection holds no memory.
#[derive(Default)]
pub struct KeyedCounter {
    map: Mutex<HashMap<String, usize>>,
}

/// One counted connection; dropping it releases the slot.
pub struct Admitted {
    counter: Arc<KeyedCounter>,
    key: String,
}

impl KeyedCounter {
    /// Counts one more connection for `key` unless it already has `max`.
    /// `max == 0` means no cap (the connection is still counted).
    pub fn try_enter(self: &Arc<Self>, key: &str, max: usize) -> Option<Admitted> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(key.to_owned()).or_insert(0);
        if max != 0 && *n >= max {
            if *n == 0 {
                map.remove(key);
            }
            return None;
        }
        *n += 1;
        Some(Admitted {
            counter: self.clone(),
            key: key.to_owned(),
        })
    }

    /// Connections counted for `key` now.
    pub fn count(&self, key: &str) -> usize {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).copied().unwrap_or(0)
    }

    /// Keys with at least one connection (the map's size: tests check it
    /// returns to zero).
    pub fn keys(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Every key with its count now.
    pub fn snapshot(&self) -> Vec<(String, usize)> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(k, n)| (k.clone(), *n)).collect()
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut map = self.counter.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// Sockets attached to each org's contexts, under a cap per org
/// (`--max-sockets-per-org`).
///
/// Counted in this process, and with a Redis hub also in Redis, so the cap
/// holds for the whole cluster rather than once per instance: each
/// instance keeps its count of each org in Redis, checked and raised in one
/// script when a socket attaches. Every third of the hub's lease an
/// instance beats: it writes its true counts (which also mends any drift
/// from sockets counted while Redis was away) and stays alive one more
/// lease; the counts of an instance that stops beating (it died) stop
/// counting one lease later. While Redis is away ([`Fallback`]) each
/// instance caps its own sockets alone, as the REST limits do.
pub struct OrgSockets {
    local: Arc<KeyedCounter>,
    shared: Option<Shared>,
}

/// The Redis side of [`OrgSockets`].
struct Shared {
    backend: Arc<RedisBackend>,
    fallback: Fallback,
    beat: tokio::task::JoinHandle<()>,
}

/// One socket counted for its org; dropping it releases the slot, here and
/// (in the background) in Redis.
pub struct OrgSlot {
    _local: Admitted,
    /// The backend and org, when Redis counted it too.
    shared: Option<(Arc<RedisBackend>, String)>,
}

impl OrgSockets {
    /// Counted in this process only (the embedded default).
    pub fn local() -> Self {
        OrgSockets {
            local: Arc::new(KeyedCounter::default()),
            shared: None,
        }
    }

    /// Counted in Redis too, for every instance on it; starts this
    /// instance's beat (needs a tokio runtime).
    pub fn shared_through(backend: Arc<RedisBackend>) -> Self {
        let local = Arc::new(KeyedCounter::default());
        let beat = tokio::spawn(beat(Arc::downgrade(&local), Arc::downgrade(&backend)));
        OrgSockets {
            local,
            shared: Some(Shared {
                backend,
                fallback: Fallback::new("socket caps per org"),
                beat,
            }),
        }
    }

    /// Counts one more socket for `org_id` unless the org already has
    /// `max` (`0`: no cap), in this process and, with Redis, in the
    /// cluster.
    pub async fn enter(&self, org_id: &str, max: usize) -> Option<OrgSlot> {
        // Here first: the beat then never writes a count lower than what
        // Redis was told (a count a little high for one beat refuses early;
        // one too low would let the org past its cap).
        let local = self.local.try_enter(org_id, max)?;
        let Some(shared) = &self.shared else {
            return Some(OrgSlot {
                _local: local,
                shared: None,
            });
        };
        let asked = shared.backend.enter_org_socket(org_id, max);
        match shared.fallback.ask(asked).await {
            Some(true) => Some(OrgSlot {
                _local: local,
                shared: Some((shared.backend.clone(), org_id.to_owned())),
            }),
            Some(false) => None,
            // Redis is away: this instance's own cap holds.
            None => Some(OrgSlot {
                _local: local,
                shared: None,
            }),
        }
    }

    /// The org's sockets on this instance.
    pub fn count(&self, org_id: &str) -> usize {
        self.local.count(org_id)
    }
}

impl Drop for OrgSockets {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.beat.abort();
        }
    }
}

impl Drop for OrgSlot {
    fn drop(&mut self) {
        let Some((backend, org_id)) = self.shared.take() else {
            return;
        };
        // Outside a runtime (the server is being torn down) the beat has
        // stopped too, and the count lapses with the instance's lease.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let left = backend.leave_org_socket(&org_id);
                if let Ok(Err(e)) = tokio::time::timeout(SHARED_TIMEOUT, left).await {
                    // The next beat writes the true count.
                    tracing::debug!(error = %e, "socket caps per org: leave not counted in Redis");
                }
            });
        }
    }
}

/// Every third of the lease, this instance's true count of each org in
/// Redis (an org it had sockets of at the last beat and has none now is
/// written as 0, which removes it). Ends with the counter or the backend.
async fn beat(local: Weak<KeyedCounter>, backend: Weak<RedisBackend>) {
    let every = match backend.upgrade() {
        Some(b) => b.lease() / 3,
        None => return,
    };
    let mut interval = tokio::time::interval(every.max(std::time::Duration::from_millis(10)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut beaten: Vec<String> = Vec::new();
    loop {
        interval.tick().await;
        let (Some(local), Some(backend)) = (local.upgrade(), backend.upgrade()) else {
            return;
        };
        let mut counts = local.snapshot();
        drop(local);
        let now: Vec<String> = counts.iter().map(|(org, _)| org.clone()).collect();
        counts.extend(
            beaten
                .iter()
                .filter(|org| !now.contains(org))
                .map(|org| (org.clone(), 0)),
        );
        match tokio::time::timeout(every, backend.beat_org_sockets(&counts)).await {
            Ok(Ok(())) => beaten = now,
            // Kept: the orgs that went to 0 are written next time.
            Ok(Err(e)) => tracing::debug!(error = %e, "socket caps per org: beat failed"),
            Err(_) => tracing::debug!("socket caps per org: beat timed out"),
        }
    }
}

/// The peer address of a TCP connection, put on every request by the
/// accept loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The client's address for per-IP limits: the configured proxy header's
/// first address when one is trusted, else the TCP peer. IPv6 addresses
/// are keyed by their /64, since one host commonly holds a whole /64.
pub fn client_ip(peer: Option<PeerAddr>, headers: &HeaderMap, header: Option<&str>) -> String {
    let from_header = header
        .and_then(|name| headers.get(name))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse::<IpAddr>().ok());
    match from_header.or(peer.map(|p| p.0.ip())) {
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Some(ip) => ip.to_string(),
        None => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_and_slots_come_back() {
        let c = Arc::new(KeyedCounter::default());
        let a = c.try_enter("ip", 2).unwrap();
        let b = c.try_enter("ip", 2).unwrap();
        assert!(c.try_enter("ip", 2).is_none());
        assert!(c.try_enter("other", 2).is_some());
        drop(a);
        assert_eq!(c.count("ip"), 1);
        let _again = c.try_enter("ip", 2).unwrap();
        drop(b);
        drop(_again);
        assert_eq!(
            c.keys(),
            0,
            "no memory is kept for keys without connections"
        );
    }

    #[test]
    fn client_addresses() {
        let peer = Some(PeerAddr("10.0.0.1:5000".parse().unwrap()));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9, 10.0.0.1".parse().unwrap());
        assert_eq!(client_ip(peer, &h, None), "10.0.0.1");
        assert_eq!(client_ip(peer, &h, Some("x-forwarded-for")), "203.0.113.9");
        let v6 = Some(PeerAddr("[2001:db8:1:2:3:4:5:6]:80".parse().unwrap()));
        assert_eq!(client_ip(v6, &h, None), "2001:db8:1:2::/64");
        assert_eq!(client_ip(None, &HeaderMap::new(), None), "unknown");
    }
}
