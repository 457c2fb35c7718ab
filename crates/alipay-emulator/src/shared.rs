//! What every handler and the notifier share: configuration, the store behind one lock, the
//! request log, the faults, the bill download links, and the signals between them.
//!
//! The store lock is a plain `std::sync::Mutex`: it is never held across an `.await`, and each
//! change's journal line is written and flushed while it is held, so that lines are in the order
//! of the changes and a change is on disk before its request is answered.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use alipay_openapi::PrivateKey;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::bill_links::BillLinks;
use crate::clock::Clock;
use crate::config::AppConfig;
use crate::faults::Faults;
use crate::model::Store;
use crate::persist::StateFile;
use crate::requests::RequestLog;

pub(crate) struct Shared {
    pub platform_key: PrivateKey,
    pub apps: HashMap<String, AppConfig>,
    pub notify_retry: Vec<Duration>,
    pub timestamp_skew: Option<Duration>,
    pub notify_timeout: Duration,
    /// `http://127.0.0.1:PORT`, for URLs the emulator hands out (qr_code, cashier).
    pub base_url: String,
    /// The emulator's time: every timestamp, expiry and retry reads it.
    pub clock: Clock,
    store: Mutex<Store>,
    state_file: Option<StateFile>,
    pub requests: Mutex<RequestLog>,
    pub faults: Mutex<Faults>,
    /// The bill download links handed out (memory only: they live 30 s).
    pub bill_links: Mutex<BillLinks>,
    /// Wakes the notifier when a notification is queued.
    pub notifier_wake: Notify,
    /// Cancelled on shutdown: the server stops accepting, held answers are released, the
    /// notifier stops.
    pub shutdown: CancellationToken,
    /// The key of the `wrong_key` fault, made on first use (key generation takes a moment).
    wrong_key: OnceLock<Option<PrivateKey>>,
}

/// Lock a mutex even if a panicking thread poisoned it: the data is plain and stays usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        platform_key: PrivateKey,
        apps: HashMap<String, AppConfig>,
        notify_retry: Vec<Duration>,
        timestamp_skew: Option<Duration>,
        notify_timeout: Duration,
        base_url: String,
        store: Store,
        state_file: Option<StateFile>,
    ) -> Self {
        Self {
            platform_key,
            apps,
            notify_retry,
            timestamp_skew,
            notify_timeout,
            base_url,
            clock: Clock::new(store.clock_offset_seconds),
            store: Mutex::new(store),
            state_file,
            requests: Mutex::new(RequestLog::default()),
            faults: Mutex::new(Faults::default()),
            bill_links: Mutex::new(BillLinks::default()),
            notifier_wake: Notify::new(),
            shutdown: CancellationToken::new(),
            wrong_key: OnceLock::new(),
        }
    }

    /// Read the store.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&lock(&self.store))
    }

    /// Change the store, record what the change touched (when persisted) and wake the notifier.
    /// A failed record is logged and the emulator keeps serving from memory.
    pub(crate) fn mutate<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let result = {
            let mut store = lock(&self.store);
            let result = f(&mut store);
            let touched = store.take_touched();
            if let Some(file) = &self.state_file
                && let Err(e) = file.record(&store, &touched)
            {
                tracing::error!("{e}");
            }
            result
        };
        self.notifier_wake.notify_one();
        result
    }

    /// Fold the journal into the snapshot (on shutdown, so the snapshot alone is the state).
    pub(crate) fn compact(&self) {
        let store = lock(&self.store);
        if let Some(file) = &self.state_file
            && let Err(e) = file.compact(&store)
        {
            tracing::error!("{e}");
        }
    }

    pub(crate) fn wrong_key(&self) -> Option<PrivateKey> {
        self.wrong_key
            .get_or_init(|| PrivateKey::generate().ok())
            .clone()
    }
}
