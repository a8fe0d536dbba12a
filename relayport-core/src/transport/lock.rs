//! The one poison-tolerant lock helper.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, recovering the guard when a previous holder panicked.
///
/// The state behind the link layer's mutexes (pending requests, channel tables) stays
/// consistent across a panic (every update is a single map operation), so poisoning carries no
/// information worth failing for; a reader task must never die of it.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_poisoned_mutex_still_locks() {
        let shared = Arc::new(Mutex::new(1));
        let clone = shared.clone();
        let _ = std::thread::spawn(move || {
            let _guard = clone.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(shared.is_poisoned());
        *lock(&shared) += 1;
        assert_eq!(*lock(&shared), 2);
    }
}
