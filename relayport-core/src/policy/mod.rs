//! The client runtime's policies, one module each: reconnect backoff, the offline queue
//! (outbox), the per-channel publish throttle and typing indicators. Each is plain data driven
//! by `tokio::time::Instant`, so the runtime's tests run on tokio's paused clock.

pub mod backoff;
pub mod outbox;
pub mod throttle;
pub mod typing;
