//! The REST JSON bodies of `sdk-core/src/rest.rs`: the request bodies the
//! reference server deserializes (axum's `Json` is `serde_json::from_slice`)
//! and the answers the admin client deserializes, each fed every input.
//!
//! Invariants, for every type: decoding arbitrary bytes never panics; what
//! decodes re-serializes, reads back equal, and serializes again to the
//! same bytes (decoding is tolerant, so the first text need not come back,
//! but what the SDK writes must be stable); `Debug` never panics.
#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokenrelay::rest::{
    Agent, AgentList, ChatReply, ChatRequest, Context, ContextMessage, CreatedUserApiKey,
    Credentials, DeletedMessage, ErrorBody, GenerateApiKeyRequest, GeneratedApiKey, LoginResponse,
    NewAgent, NewClientKey, NewContext, NewUserApiKey, PublishableKey, StreamTokenResponse,
    SuccessBody, User, UserApiKey, UserApiKeyList,
};

fuzz_target!(|body: &[u8]| {
    // Request bodies (the server decodes these).
    round_trip::<NewAgent>(body);
    round_trip::<NewContext>(body);
    round_trip::<ChatRequest>(body);
    round_trip::<GenerateApiKeyRequest>(body);
    round_trip::<Credentials>(body);
    round_trip::<NewUserApiKey>(body);
    round_trip::<NewClientKey>(body);
    // Answers (the admin client decodes these; the server stores agents and
    // histories as JSON and reads them back).
    round_trip::<Agent>(body);
    round_trip::<AgentList>(body);
    round_trip::<Context>(body);
    round_trip::<Vec<ContextMessage>>(body);
    round_trip::<ChatReply>(body);
    round_trip::<GeneratedApiKey>(body);
    round_trip::<User>(body);
    round_trip::<LoginResponse>(body);
    round_trip::<CreatedUserApiKey>(body);
    round_trip::<UserApiKey>(body);
    round_trip::<UserApiKeyList>(body);
    round_trip::<DeletedMessage>(body);
    round_trip::<StreamTokenResponse>(body);
    round_trip::<PublishableKey>(body);
    round_trip::<SuccessBody>(body);
    if let Some(e) = round_trip::<ErrorBody>(body) {
        for status in [None, Some(400), Some(401), Some(403), Some(429), Some(500)] {
            let _ = e.to_error(status).to_string();
        }
    }
});

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(body: &[u8]) -> Option<T> {
    let first: T = serde_json::from_slice(body).ok()?;
    let written = serde_json::to_vec(&first).expect("a decoded body serializes");
    let again: T = serde_json::from_slice(&written).unwrap_or_else(|e| {
        panic!(
            "{} does not read back what it wrote: {e}: {}",
            std::any::type_name::<T>(),
            String::from_utf8_lossy(&written)
        )
    });
    assert_eq!(first, again, "{}", String::from_utf8_lossy(body));
    assert_eq!(
        serde_json::to_vec(&again).expect("serializes"),
        written,
        "{}",
        String::from_utf8_lossy(body)
    );
    let _ = format!("{again:?}");
    Some(again)
}
