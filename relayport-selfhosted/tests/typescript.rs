//! `bindings/protocol.ts` is what the protocol types generate: CI fails when it is stale.
//! Regenerate with `RELAYPORT_UPDATE_TS=1 cargo test -p relayport-selfhosted --features
//! typescript --test typescript`.
#![cfg(feature = "typescript")]

#[test]
fn the_committed_protocol_declarations_are_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings/protocol.ts");
    let content = relayport_selfhosted::protocol::typescript_declarations();
    assert!(content.contains("export type ClientFrame"), "{content}");
    if let Err(stale) = relayport_core::typescript::check_or_update(&path, &content) {
        panic!("{stale}");
    }
}
