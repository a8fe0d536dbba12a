//! Typing indicators: at most one "typing" signal per interval per channel, and a "stopped"
//! signal by itself after a quiet period.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::channel::Channel;

/// Typing-indicator timing and the event name the signals travel under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypingPolicy {
    /// The shortest interval between two "typing" signals on one channel.
    pub min_interval: Duration,
    /// "Stopped" is sent this long after the last `start_typing`.
    pub idle_stop: Duration,
    /// The event name of the signals; the payload is `{"typing": bool, "client_id": …}`.
    pub event: String,
}

impl Default for TypingPolicy {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_secs(1),
            idle_stop: Duration::from_secs(5),
            event: "typing".to_owned(),
        }
    }
}

#[derive(Debug)]
struct Active {
    last_signal: Instant,
    stop_at: Instant,
}

/// The typing state of every channel.
#[derive(Debug, Default)]
pub struct Typing {
    active: HashMap<Channel, Active>,
}

impl Typing {
    /// Records a keystroke; returns whether a "typing" signal is due now.
    pub fn start(&mut self, policy: &TypingPolicy, channel: &Channel, now: Instant) -> bool {
        let stop_at = now + policy.idle_stop;
        match self.active.get_mut(channel) {
            Some(a) => {
                a.stop_at = stop_at;
                if now >= a.last_signal + policy.min_interval {
                    a.last_signal = now;
                    true
                } else {
                    false
                }
            }
            None => {
                self.active.insert(
                    channel.clone(),
                    Active {
                        last_signal: now,
                        stop_at,
                    },
                );
                true
            }
        }
    }

    /// Stops typing on a channel; returns whether a "stopped" signal is due (it was typing).
    pub fn stop(&mut self, channel: &Channel) -> bool {
        self.active.remove(channel).is_some()
    }

    /// Removes and returns the channels whose quiet period ended by `now`.
    pub fn expired(&mut self, now: Instant) -> Vec<Channel> {
        let done: Vec<Channel> = self
            .active
            .iter()
            .filter(|(_, a)| a.stop_at <= now)
            .map(|(c, _)| c.clone())
            .collect();
        for c in &done {
            self.active.remove(c);
        }
        done
    }

    /// When the next quiet period ends.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.active.values().map(|a| a.stop_at).min()
    }

    /// Forgets every channel (the link went down: nobody sees the indicator any more).
    pub fn clear(&mut self) {
        self.active.clear();
    }
}
