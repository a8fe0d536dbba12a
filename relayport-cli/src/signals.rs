//! Leaving on request: ctrl-c (SIGINT) and, on Unix, SIGTERM (what `kill`, systemd and
//! container runtimes send) end a command the same way, with the client's goodbye.

use relayport::{RealtimeError, Result};

use crate::output::note;

/// Resolves when the process is asked to stop; an error installing a handler ends the command.
pub(crate) async fn stop_requested() -> Result<()> {
    let cannot = |what: &str, e: std::io::Error| {
        RealtimeError::Config(format!("cannot listen for {what}: {e}"))
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(|e| cannot("SIGTERM", e))?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => {
                r.map_err(|e| cannot("ctrl-c", e))?;
                note("interrupted: leaving");
            }
            _ = term.recv() => note("terminated: leaving"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| cannot("ctrl-c", e))?;
        note("interrupted: leaving");
    }
    Ok(())
}
