//! How a secret shows in `Debug` output: never its text.

use core::fmt;

/// Prints a secret as `<redacted>` (or `""` when empty, which is worth
/// seeing when debugging a missing credential).
pub(crate) struct Redacted<'a>(pub(crate) &'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("<redacted>")
        }
    }
}
