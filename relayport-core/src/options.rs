//! Per-subscription options: provider extensions carried in a typed way through the neutral
//! API, kept with the channel and handed to every (re)subscribe.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Options of one subscription, for the provider that understands them: each provider crate
/// documents the types it reads (`relayport_supabase::ChannelOptions` for postgres_changes
/// filters and broadcast self/ack, `relayport_ably::ChannelOptions` for channel params such as
/// `rewind`); other providers ignore them. Given to
/// [`RealtimeClient::subscribe_with`](crate::RealtimeClient::subscribe_with), they survive
/// reconnects: every resubscribe carries them again.
///
/// ```
/// use relayport_core::SubscriptionOptions;
/// #[derive(Debug, Clone, PartialEq)]
/// struct Rewind(u32);
/// let options = SubscriptionOptions::new().with(Rewind(10));
/// assert_eq!(options.get::<Rewind>(), Some(&Rewind(10)));
/// assert!(options.get::<String>().is_none());
/// ```
#[derive(Clone, Default)]
pub struct SubscriptionOptions {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl SubscriptionOptions {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the option of type `T`.
    pub fn with<T: Any + Send + Sync>(mut self, value: T) -> Self {
        self.values.insert(TypeId::of::<T>(), Arc::new(value));
        self
    }

    /// The option of type `T`, if given.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
    }

    /// Whether no option is set.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl fmt::Debug for SubscriptionOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubscriptionOptions({} set)", self.values.len())
    }
}

/// Equal when they hold the same values (the same `with` calls, cloned).
impl PartialEq for SubscriptionOptions {
    fn eq(&self, other: &Self) -> bool {
        self.values.len() == other.values.len()
            && self
                .values
                .iter()
                .all(|(k, v)| other.values.get(k).is_some_and(|o| Arc::ptr_eq(v, o)))
    }
}
