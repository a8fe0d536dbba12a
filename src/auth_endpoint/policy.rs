//! [`AccessPolicy`]: the application's hook deciding who the user is and what they may join.

use async_trait::async_trait;
use axum::http::HeaderMap;
use relayport_core::{Channel, PresenceUser};

/// The application's rules. The endpoint calls [`AccessPolicy::user`] with the request's
/// headers (a session cookie, a bearer token: whatever the app uses), then
/// [`AccessPolicy::can_access_channel`].
#[async_trait]
pub trait AccessPolicy: Send + Sync + 'static {
    /// The signed-in user making the request, or `None` (answered with 401). The user's `info`
    /// is what other presence members see; `Null` lets the client supply it.
    async fn user(&self, headers: &HeaderMap) -> Option<PresenceUser>;

    /// Whether `user` may subscribe to `channel` (a neutral, private or presence channel).
    async fn can_access_channel(&self, user: &PresenceUser, channel: &Channel) -> bool;
}

/// An [`AccessPolicy`] made of two closures; see [`policy`].
pub struct FnPolicy<U, C> {
    user: U,
    can: C,
}

impl<U, C> std::fmt::Debug for FnPolicy<U, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnPolicy")
    }
}

/// A policy from two closures: `user(headers)` and `can_access_channel(user, channel)`.
pub fn policy<U, C>(user: U, can_access_channel: C) -> FnPolicy<U, C>
where
    U: Fn(&HeaderMap) -> Option<PresenceUser> + Send + Sync + 'static,
    C: Fn(&PresenceUser, &Channel) -> bool + Send + Sync + 'static,
{
    FnPolicy {
        user,
        can: can_access_channel,
    }
}

#[async_trait]
impl<U, C> AccessPolicy for FnPolicy<U, C>
where
    U: Fn(&HeaderMap) -> Option<PresenceUser> + Send + Sync + 'static,
    C: Fn(&PresenceUser, &Channel) -> bool + Send + Sync + 'static,
{
    async fn user(&self, headers: &HeaderMap) -> Option<PresenceUser> {
        (self.user)(headers)
    }

    async fn can_access_channel(&self, user: &PresenceUser, channel: &Channel) -> bool {
        (self.can)(user, channel)
    }
}
