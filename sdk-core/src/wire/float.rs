//! Floating-point numbers in JSON text, read and written by the host in the
//! browser build.
//!
//! Correctly rounded decimal ↔ binary conversion is big: Rust's `f64`
//! parser and serde_json's float writer bring ~20 KB of code and tables
//! that barely compress (powers of ten), about a sixth of the browser
//! bundle, for numbers that are rare on this wire (a float inside a tool's
//! input or an event's data). A JavaScript host already ships both
//! conversions, so on `wasm32` the binding hands them over once with
//! [`set_host_floats`] and this module calls them: JSON's number grammar is
//! checked here first, so the host only ever sees valid decimal text, and
//! the host's shortest round-trip digits are laid out here exactly as
//! serde_json lays out its own (a test holds the two layouts together).
//! Integers never take this path. Native builds keep Rust's own
//! conversions.

use crate::prelude::*;

#[cfg(target_arch = "wasm32")]
use core::cell::Cell;

/// The installed conversions: one per module instance. A `static` rather
/// than a `thread_local!` so the crate builds without `std`.
#[cfg(target_arch = "wasm32")]
struct HostCell(Cell<Option<HostFloats>>);

// SAFETY: wasm32 without the `atomics` target feature has one thread, so
// the cell is never reached from two. With `atomics` (a threaded build,
// which the browser package is not) this impl does not exist and the
// build fails here rather than race.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl Sync for HostCell {}

/// The host's conversions of `f64` (the browser package passes JavaScript's).
#[derive(Debug, Clone, Copy)]
pub struct HostFloats {
    /// Parses decimal text that is a valid JSON number (or the same with a
    /// leading `+`, a bare `.5` or `5.`), rounding to the nearest `f64`, as
    /// JavaScript's `parseFloat` does.
    pub parse: fn(&str) -> f64,
    /// Appends the shortest digits that read back as `value`, in exponent
    /// form with one digit before the point, as JavaScript's
    /// `value.toExponential()` writes them (`1.5e+21`, `5e-7`). Only called
    /// for finite values.
    pub exponential: fn(value: f64, out: &mut String),
}

#[cfg(target_arch = "wasm32")]
static HOST: HostCell = HostCell(Cell::new(None));

/// Installs the host's float conversions (browser build only). Until it is
/// called, a floating-point number in a frame reads as out of range (the
/// frame is refused with a protocol error) and none is ever written.
#[cfg(target_arch = "wasm32")]
pub fn set_host_floats(floats: HostFloats) {
    HOST.0.set(Some(floats));
}

/// `text` (a JSON number's text with a fraction or exponent, or what Rust's
/// `f64::from_str` accepts) as the nearest `f64`; `None` if it is not a
/// number.
pub(crate) fn parse(text: &str) -> Option<f64> {
    #[cfg(not(target_arch = "wasm32"))]
    return text.parse().ok();
    #[cfg(target_arch = "wasm32")]
    {
        // Rust's grammar minus inf/nan (which no caller keeps): the host's
        // parseFloat would also take a prefix ("12abc") or "Infinity".
        if !is_decimal(text) {
            return None;
        }
        HOST.0.get().map(|h| (h.parse)(text))
    }
}

/// Appends a finite float as serde_json writes it.
#[cfg(target_arch = "wasm32")]
pub(crate) fn push(out: &mut String, value: f64) {
    match HOST.0.get() {
        Some(host) => push_via(out, value, host.exponential),
        None => out.push_str("null"),
    }
}

/// [`push`] with `exponential` as the host's digits.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn push_via(out: &mut String, value: f64, exponential: fn(f64, &mut String)) {
    // JavaScript writes -0 as "0e+0": zero's sign is taken from the value.
    if value == 0.0 {
        return out.push_str(if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        });
    }
    let mut digits = String::new();
    exponential(value, &mut digits);
    lay_out(out, &digits);
}

/// `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`: the finite
/// part of what `f64::from_str` accepts.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn is_decimal(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let mut mantissa = digits(&mut i);
    if b.get(i) == Some(&b'.') {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return false;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Lays out `exponential` (`-d.ddde±x`, the host's shortest digits) the
/// way serde_json (zmij) writes an `f64`: plain decimal with at least one
/// fractional digit (`12340000000.0`, `0.001234`) while the decimal
/// exponent is in `-5..=15`, else `d.ddde+x` / `de-x`; zero is `0.0`.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn lay_out(out: &mut String, exponential: &str) {
    let (negative, rest) = match exponential.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, exponential),
    };
    let (mantissa, exp) = rest.split_once(['e', 'E']).unwrap_or((rest, "0"));
    let exp = exp.strip_prefix('+').unwrap_or(exp);
    let (exp_negative, exp_digits) = match exp.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, exp),
    };
    let magnitude = exp_digits.bytes().fold(0i32, |n, d| {
        n.saturating_mul(10).saturating_add(i32::from(d - b'0'))
    });
    let exp = if exp_negative { -magnitude } else { magnitude };
    // Significant digits without the point and trailing zeros.
    let mut digits: Vec<u8> = mantissa.bytes().filter(|b| *b != b'.').collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    if negative {
        out.push('-');
    }
    if digits == b"0" {
        return out.push_str("0.0");
    }
    let push = |out: &mut String, d: &[u8]| {
        for &c in d {
            out.push(char::from(c));
        }
    };
    let n = digits.len() as i32;
    if (-5..=15).contains(&exp) {
        if n - 1 <= exp {
            push(out, &digits);
            for _ in 0..(exp + 1 - n) {
                out.push('0');
            }
            out.push_str(".0");
        } else if exp >= 0 {
            let (int, frac) = digits.split_at(exp as usize + 1);
            push(out, int);
            out.push('.');
            push(out, frac);
        } else {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            push(out, &digits);
        }
        return;
    }
    push(out, &digits[..1]);
    if n > 1 {
        out.push('.');
        push(out, &digits[1..]);
    }
    out.push_str(if exp < 0 { "e-" } else { "e+" });
    crate::error::push_u64(out, u64::from(exp.unsigned_abs()));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde_json writes, and what [`lay_out`] makes of the same
    /// digits in `toExponential` form.
    ///
    /// The stand-in for the host's digits is taken from serde_json's own
    /// text rather than from Rust's `{:e}`: when the value lies exactly
    /// halfway between two shortest candidates, `{:e}` rounds the last
    /// digit up while serde_json and JavaScript pick the even one
    /// (`-148525334612464.125` is written `…64.12` by both, `…64.13` by
    /// Rust). The digits are the host's business; the layout is ours.
    fn both(f: f64) -> (String, String) {
        let reference = serde_json::Number::from_f64(f).unwrap().to_string();
        let exponential = exponential_form(&reference);
        // The stand-in is as short as Rust's own shortest digits.
        assert_eq!(
            significant_digits(&exponential),
            significant_digits(&format!("{f:e}")),
            "{reference}"
        );
        let mut laid = String::new();
        lay_out(&mut laid, &exponential);
        (laid, reference)
    }

    /// Significant digits of `d.ddde±x` text, trailing zeros dropped.
    fn significant_digits(exponential: &str) -> usize {
        let mantissa = exponential.split(['e', 'E']).next().unwrap();
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        digits.trim_end_matches('0').len().max(1)
    }

    /// serde_json's text (`-12.5`, `0.00012`, `1.5e+21`, `5e-324`)
    /// rewritten as JavaScript's `toExponential` writes the same digits
    /// (`-1.25e+1`, `1.2e-4`, `1.5e+21`, `5e-324`).
    fn exponential_form(text: &str) -> String {
        let (sign, rest) = match text.strip_prefix('-') {
            Some(rest) => ("-", rest),
            None => ("", text),
        };
        let (mantissa, exp) = rest.split_once('e').unwrap_or((rest, "0"));
        let exp: i32 = exp.trim_start_matches('+').parse().unwrap();
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all: String = format!("{int}{frac}");
        let first = all.find(|c| c != '0').unwrap_or(all.len() - 1);
        let digits = all[first..].trim_end_matches('0');
        let digits = if digits.is_empty() { "0" } else { digits };
        // The first significant digit's power of ten.
        let exp = exp + int.len() as i32 - 1 - first as i32;
        let (lead, tail) = digits.split_at(1);
        let point = if tail.is_empty() { "" } else { "." };
        let exp_sign = if exp < 0 { "-" } else { "+" };
        format!("{sign}{lead}{point}{tail}e{exp_sign}{}", exp.unsigned_abs())
    }

    #[test]
    fn a_tie_takes_the_even_digit_as_serde_json_and_javascript_do() {
        let f = f64::from_bits(14042472849221434884);
        let (laid, reference) = both(f);
        assert_eq!(reference, "-148525334612464.12");
        assert_eq!(laid, reference);
        assert_eq!(exponential_form(&reference), "-1.4852533461246412e+14");
        for (text, js) in [
            ("-12.5", "-1.25e+1"),
            ("0.00012", "1.2e-4"),
            ("1.5e+21", "1.5e+21"),
            ("5e-324", "5e-324"),
            ("100.0", "1e+2"),
            ("1.0", "1e+0"),
        ] {
            assert_eq!(exponential_form(text), js);
        }
    }

    #[test]
    fn the_layout_is_serde_jsons() {
        for f in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            1.5,
            10.0,
            100.0,
            1e15,
            1e16,
            1.5e16,
            1.234e15,
            123.456,
            1e-5,
            1e-6,
            1.5e-6,
            0.000123,
            1e21,
            1e22,
            1.7976931348623157e308,
            5e-324,
            2.5e-308,
            -3.25e-7,
            9007199254740993.0,
            0.1,
            0.2,
            0.30000000000000004,
            1234e7,
        ] {
            let (laid, reference) = both(f);
            assert_eq!(laid, reference, "{f:e}");
        }
        // JavaScript writes a `+` in positive exponents.
        let mut js = String::new();
        lay_out(&mut js, "1.5e+21");
        assert_eq!(js, both(1.5e21).1);
    }

    #[test]
    fn zero_keeps_its_sign_though_javascript_drops_it() {
        // `(-0).toExponential()` is "0e+0"; serde_json writes "-0.0".
        let js = |v: f64, out: &mut String| out.push_str(&format!("{:e}", v.abs()));
        for f in [0.0, -0.0, -1.5, 2.0] {
            let mut pushed = String::new();
            push_via(&mut pushed, f, |v, out| {
                if v < 0.0 {
                    out.push('-');
                }
                out.push_str(&format!("{:e}", v.abs()));
            });
            assert_eq!(pushed, serde_json::Number::from_f64(f).unwrap().to_string());
        }
        let mut zero = String::new();
        push_via(&mut zero, -0.0, js);
        assert_eq!(zero, "-0.0");
    }

    #[test]
    fn the_grammar_is_rusts_finite_one() {
        for t in [
            "1", "-1.5", "+2", "1.", ".5", "1e5", "1E+5", "-0.0e-3", "00.1",
        ] {
            assert!(is_decimal(t), "{t}");
            assert!(t.parse::<f64>().is_ok(), "{t}");
        }
        for t in [
            "", "-", ".", "e5", "1e", "1e+", "1.5.2", " 1", "1 ", "0x10", "inf", "NaN",
        ] {
            assert!(!is_decimal(t), "{t}");
        }
    }

    proptest::proptest! {
        #[test]
        fn every_finite_float_is_laid_out_as_serde_json_writes_it(bits in proptest::num::u64::ANY) {
            let f = f64::from_bits(bits);
            if f.is_finite() {
                let (laid, reference) = both(f);
                proptest::prop_assert_eq!(laid, reference);
            }
        }

        #[test]
        fn decimal_text_is_recognised_as_rust_parses_it(text in "[-+]?[0-9]{0,3}[.]?[0-9]{0,3}([eE][-+]?[0-9]{0,3})?") {
            let finite = |f: Option<f64>| f.filter(|f| f.is_finite());
            let rust = finite(text.parse::<f64>().ok());
            let ours = finite(is_decimal(&text).then(|| text.parse::<f64>().ok()).flatten());
            proptest::prop_assert_eq!(ours, rust);
        }
    }
}
