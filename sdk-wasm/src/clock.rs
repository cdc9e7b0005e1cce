//! Time as the session wants it, read from the JS host: a monotonic
//! millisecond clock (`performance.now()`, which exists in browsers, workers
//! and Node) and the wall clock in unix seconds (`Date.now()`), used only to
//! check a token's JWT `exp`.

use tokenrelay::Timestamp;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// A monotonic clock whose origin is when it was created.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: f64,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        Clock {
            origin: performance_now(),
        }
    }

    /// Milliseconds since the clock was created, as a session timestamp.
    pub fn now(&self) -> Timestamp {
        // `performance.now()` is monotonic, but a negative or NaN difference
        // must never wrap into a huge timestamp: clamp at zero.
        let ms = (performance_now() - self.origin).max(0.0);
        Timestamp::from_millis(ms as u64)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// The wall clock, in unix seconds.
pub fn unix_now() -> u64 {
    (js_sys::Date::now() / 1000.0).max(0.0) as u64
}
