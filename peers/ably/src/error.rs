//! Ably error bodies: `{code, statusCode, message}`.

use serde_json::{Value, json};

/// An Ably error as the protocol carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AblyError {
    /// Ably error code (40101, 40160, …).
    pub code: u32,
    /// The HTTP-like status (401, 403, …).
    pub status: u16,
    /// Human-readable text.
    pub message: String,
}

impl AblyError {
    /// An error with `code`, `status` and `message`.
    pub fn new(code: u32, status: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            status,
            message: message.into(),
        }
    }

    /// The wire form.
    pub fn to_json(&self) -> Value {
        json!({"code": self.code, "statusCode": self.status, "message": self.message})
    }

    /// 40000 bad request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(40000, 400, message)
    }

    /// 40160 operation not permitted by the capability.
    pub fn not_permitted(what: impl Into<String>) -> Self {
        Self::new(40160, 401, what)
    }
}

impl std::fmt::Display for AblyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}
