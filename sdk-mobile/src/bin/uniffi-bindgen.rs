//! The in-workspace `uniffi-bindgen` (built with `--features cli`, dev
//! profile): generates the Kotlin and Swift sources from the compiled
//! library (`generate --library target/…/libtokenrelay_mobile.so`), so the
//! generator always matches the uniffi version the library was built with.

fn main() {
    uniffi::uniffi_bindgen_main()
}
