//! Per app: the signed-in users' connections (server-to-user events, terminate, watchlists)
//! and the presence user of each Pusher-protocol socket on each presence channel (the
//! `user_id` of client events).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::super::connection::Kick;
use super::super::presence::ConnId;

#[derive(Default)]
struct Inner {
    signed_in: HashMap<String, HashMap<ConnId, Arc<Kick>>>,
    presence: HashMap<String, HashMap<String, String>>,
    /// Watched user → the connections watching them.
    watchers: HashMap<String, HashSet<ConnId>>,
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

    /// Records that `conn` signed in as `user`; `true` when the user just came online (no
    /// other connection of theirs was signed in).
    pub fn sign_in(&self, user: &str, conn: ConnId, kick: Arc<Kick>) -> bool {
        let mut inner = self.lock();
        let conns = inner.signed_in.entry(user.to_owned()).or_default();
        let first = conns.is_empty();
        conns.insert(conn, kick);
        first
    }

    /// Forgets `conn`'s sign-in as `user`; `true` when the user just went offline.
    pub fn sign_out(&self, user: &str, conn: ConnId) -> bool {
        let mut inner = self.lock();
        let Some(conns) = inner.signed_in.get_mut(user) else {
            return false;
        };
        if conns.remove(&conn).is_none() {
            return false;
        }
        let last = conns.is_empty();
        if last {
            inner.signed_in.remove(user);
        }
        last
    }

    /// Whether `user` has a signed-in connection.
    pub fn is_online(&self, user: &str) -> bool {
        self.lock().signed_in.contains_key(user)
    }

    /// `conn` watches `users` (its watchlist).
    pub fn watch(&self, conn: ConnId, users: &[String]) {
        let mut inner = self.lock();
        for u in users {
            inner.watchers.entry(u.clone()).or_default().insert(conn);
        }
    }

    /// `conn` stops watching `users`.
    pub fn unwatch(&self, conn: ConnId, users: &[String]) {
        let mut inner = self.lock();
        for u in users {
            if let Some(w) = inner.watchers.get_mut(u) {
                w.remove(&conn);
                if w.is_empty() {
                    inner.watchers.remove(u);
                }
            }
        }
    }

    /// The connections watching `user`.
    pub fn watchers(&self, user: &str) -> Vec<ConnId> {
        self.lock()
            .watchers
            .get(user)
            .map(|w| w.iter().copied().collect())
            .unwrap_or_default()
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
        assert!(u.sign_in("ada", 1, kick.clone()), "came online");
        assert!(!u.sign_in("ada", 2, kick), "already online");
        assert_eq!(u.connections("ada").len(), 2);
        assert!(!u.sign_out("ada", 1));
        assert!(!u.sign_out("ada", 1), "twice is nothing");
        assert!(u.sign_out("ada", 2), "went offline");
        assert!(u.connections("ada").is_empty() && !u.is_online("ada"));
        u.watch(7, &["ada".into(), "bob".into()]);
        assert_eq!(u.watchers("ada"), [7]);
        u.unwatch(7, &["ada".into()]);
        assert!(u.watchers("ada").is_empty());
        assert_eq!(u.watchers("bob"), [7]);
        u.set_presence("1.1", "presence:x", "ada");
        assert_eq!(u.presence_user("1.1", "presence:x").as_deref(), Some("ada"));
        assert_eq!(u.presence_user("1.2", "presence:x"), None);
        u.forget_socket("1.1");
        assert_eq!(u.presence_user("1.1", "presence:x"), None);
    }
}
