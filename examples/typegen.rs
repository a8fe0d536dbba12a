//! The chat demo's event types as TypeScript, for a frontend that talks to the same channels
//! (pusher-js against the server's Pusher mode, or the native protocol).
//!
//! ```sh
//! cargo run --example typegen --features typescript            # prints the module
//! cargo run --example typegen --features typescript -- --check # fails if the file is stale
//! RELAYPORT_UPDATE_TS=1 cargo run --example typegen --features typescript -- --check
//! ```
//!
//! The committed output is `examples/generated/chat-events.ts`; `scripts/guards typescript`
//! runs the check in CI.

use relayport::EventType;
use relayport::typescript::{Declarations, TS, check_or_update};
use serde::{Deserialize, Serialize};

/// A chat line (`chat:message`), as the chat example publishes it.
#[derive(Debug, Serialize, Deserialize, TS)]
#[ts(crate = "relayport::typescript::ts_rs")]
struct ChatMessage {
    /// Who wrote it.
    from: String,
    /// The text.
    text: String,
}

impl EventType for ChatMessage {
    const NAME: &'static str = "chat:message";
}

/// A typing indicator (`typing`), as the client runtime's typing policy sends it.
#[derive(Debug, Serialize, Deserialize, TS)]
#[ts(crate = "relayport::typescript::ts_rs")]
struct Typing {
    /// Whether the member is typing.
    typing: bool,
}

impl EventType for Typing {
    const NAME: &'static str = "typing";
}

fn main() {
    let module = Declarations::new("examples/typegen.rs")
        .event::<ChatMessage>()
        .event::<Typing>()
        .render();
    if std::env::args().any(|a| a == "--check") {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/generated/chat-events.ts");
        if let Err(stale) = check_or_update(&path, &module) {
            eprintln!("{stale}");
            std::process::exit(1);
        }
        println!("{} is current", path.display());
    } else {
        print!("{module}");
    }
}
