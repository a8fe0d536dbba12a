//! How a link ended, as seen from the wire: the peer's close frame, or a lost connection.

use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// How the peer ended a link. Each provider maps it to a [`crate::CloseReason`] with its own
/// table of close codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerClose {
    /// The close frame's code; `None` when the frame had no code or no frame arrived.
    pub code: Option<u16>,
    /// The close frame's reason, or what went wrong when the connection was lost.
    pub reason: String,
    /// `true` when the peer sent a close frame, `false` when the connection was lost without
    /// one (reset, end of stream, I/O error).
    pub clean: bool,
}

impl PeerClose {
    /// The peer's close frame (`None`: a close frame without a code).
    pub fn from_frame(frame: Option<&CloseFrame>) -> Self {
        match frame {
            Some(f) => Self {
                code: Some(u16::from(f.code)),
                reason: f.reason.to_string(),
                clean: true,
            },
            None => Self {
                code: None,
                reason: String::new(),
                clean: true,
            },
        }
    }

    /// A connection lost without a close frame; `why` says how (empty: end of stream).
    pub fn lost(why: impl Into<String>) -> Self {
        Self {
            code: None,
            reason: why.into(),
            clean: false,
        }
    }

    /// The code widened to the core's [`crate::CloseReason::code`] type.
    pub fn code_i64(&self) -> Option<i64> {
        self.code.map(i64::from)
    }
}

impl std::fmt::Display for PeerClose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.clean, self.code) {
            (false, _) if self.reason.is_empty() => f.write_str("connection lost"),
            (false, _) => write!(f, "connection lost: {}", self.reason),
            (true, Some(code)) if self.reason.is_empty() => write!(f, "closed with code {code}"),
            (true, Some(code)) => write!(f, "closed with code {code}: {}", self.reason),
            (true, None) => f.write_str("closed without a code"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    #[test]
    fn parses_a_close_frame() {
        let frame = CloseFrame {
            code: CloseCode::from(4009),
            reason: "idle".into(),
        };
        let close = PeerClose::from_frame(Some(&frame));
        assert_eq!(close.code, Some(4009));
        assert_eq!(close.code_i64(), Some(4009));
        assert_eq!(close.reason, "idle");
        assert!(close.clean);
        assert_eq!(close.to_string(), "closed with code 4009: idle");
    }

    #[test]
    fn describes_every_shape() {
        assert_eq!(
            PeerClose::from_frame(None).to_string(),
            "closed without a code"
        );
        assert_eq!(PeerClose::lost("").to_string(), "connection lost");
        assert_eq!(
            PeerClose::lost("reset by peer").to_string(),
            "connection lost: reset by peer"
        );
        assert!(!PeerClose::lost("x").clean);
    }
}
