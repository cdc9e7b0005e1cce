//! `uniffi-bindgen`: generates the Kotlin and Swift sources from the
//! compiled tokenrelay-mobile library
//! (`generate --library target/…/libtokenrelay_mobile.so`). It is built from
//! the workspace's uniffi, so the generator always matches the uniffi
//! version the library was built with.

fn main() {
    uniffi::uniffi_bindgen_main()
}
