//! Who may hold a connection: counts of open connections per key (a peer
//! address, a client address, an org), each under a cap, released when
//! the guard drops however the connection ends.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;

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
