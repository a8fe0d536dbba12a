//! Writing JSON lines to stdout and notes to stderr.

use std::io::Write;

use relayport::{RealtimeError, Result};
use serde::Serialize;

/// `text` on one line (newlines become spaces).
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Prints `value` as one JSON line on stdout and flushes (pipe-friendly). A closed stdout
/// (the reader went away) is a `Closed` error, ending the command.
pub(crate) fn json_line<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let line = serde_json::to_string(value)
        .map_err(|e| RealtimeError::Protocol(format!("cannot print as JSON: {e}")))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| RealtimeError::Closed(format!("stdout: {e}")))
}

/// A note on stderr.
pub(crate) fn note(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", one_line(text));
}
