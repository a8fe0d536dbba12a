//! Per app: the signed-in users' connections (server-to-user events, terminate) and the
//! presence user of each Pusher-protocol socket on each presence channel (the `user_id` of
//! client events).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::super::connection::Kick;
use super::super::presence::ConnId;

#[derive(Default)]
struct Inner {
    signed_in: HashMap<String, HashMap<ConnId, Arc<Kick>>>,
    presence: HashMap<String, HashMap<String, String>>,
}

/// The registry; cheap operations under one mutex, never held across an `.await`.
#[derive(Default)]
pub struct Users {
    inner: Mutex<Inner>,
}

impl Users {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `conn` signed in as `user`.
    pub fn sign_in(&self, user: &str, conn: ConnId, kick: Arc<Kick>) {
        self.lock()
            .signed_in
            .entry(user.to_owned())
            .or_default()
            .insert(conn, kick);
    }

    /// Forgets `conn`'s sign-in as `user`.
    pub fn sign_out(&self, user: &str, conn: ConnId) {
        let mut inner = self.lock();
        if let Some(conns) = inner.signed_in.get_mut(user) {
            conns.remove(&conn);
            if conns.is_empty() {
                inner.signed_in.remove(user);
            }
        }
    }

    /// The connections signed in as `user`.
    pub fn connections(&self, user: &str) -> Vec<(ConnId, Arc<Kick>)> {
        self.lock()
            .signed_in
            .get(user)
            .map(|c| c.iter().map(|(id, k)| (*id, k.clone())).collect())
            .unwrap_or_default()
    }

    /// Records the presence user of `socket` on the native channel `key`.
    pub fn set_presence(&self, socket: &str, key: &str, user: &str) {
        self.lock()
            .presence
            .entry(socket.to_owned())
            .or_default()
            .insert(key.to_owned(), user.to_owned());
    }

    /// Forgets the presence user of `socket` on `key`.
    pub fn clear_presence(&self, socket: &str, key: &str) {
        let mut inner = self.lock();
        if let Some(m) = inner.presence.get_mut(socket) {
            m.remove(key);
            if m.is_empty() {
                inner.presence.remove(socket);
            }
        }
    }

    /// Forgets every presence user of `socket` (it closed).
    pub fn forget_socket(&self, socket: &str) {
        self.lock().presence.remove(socket);
    }

    /// The presence user of `socket` on `key`.
    pub fn presence_user(&self, socket: &str, key: &str) -> Option<String> {
        self.lock()
            .presence
            .get(socket)
            .and_then(|m| m.get(key).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_ins_and_presence_users_are_tracked_and_forgotten() {
        let u = Users::default();
        let kick = Arc::new(Kick::default());
        u.sign_in("ada", 1, kick.clone());
        u.sign_in("ada", 2, kick);
        assert_eq!(u.connections("ada").len(), 2);
        u.sign_out("ada", 1);
        u.sign_out("ada", 2);
        assert!(u.connections("ada").is_empty());
        u.set_presence("1.1", "presence:x", "ada");
        assert_eq!(u.presence_user("1.1", "presence:x").as_deref(), Some("ada"));
        assert_eq!(u.presence_user("1.2", "presence:x"), None);
        u.forget_socket("1.1");
        assert_eq!(u.presence_user("1.1", "presence:x"), None);
    }
}
