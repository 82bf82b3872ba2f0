//! A caching wrapper around any collateral source.
//!
//! Per platform, one entry: the collateral, its earliest nextUpdate (`valid_until`), when it was
//! fetched, and the earliest instant another fetch may start (`retry_after`, which throttles
//! refreshes and failing sources). What to do at `now` is decided by the pure `plan` function; the
//! clock is read once per request, through [`Clock`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dcap::Collateral;
use tokio::task::JoinHandle;

use super::pcs;
use super::{CollateralSource, PlatformId, SourceError, SourceFuture};

/// Unix time in seconds. Injected so that cache behaviour is testable without sleeping.
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// Durable storage for cached collateral, so that a restart serves known platforms without a
/// PCCS round trip. Keys are [`PlatformId::key`] (`<fmspc hex>-<processor|platform>`); values
/// are `QuoteCollateralV3` JSON ([`Collateral::to_json`]). Implementations log their own errors:
/// a failed save only costs a refetch after a restart.
pub trait CollateralPersistence: Send + Sync {
    /// The stored JSON for `key`, if any.
    fn load(&self, key: &str) -> Option<String>;
    /// Stores (replaces) the JSON for `key`.
    fn save(&self, key: &str, json: &str);
}

/// Cache tuning, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Refresh in the background once `now ≥ valid_until − refresh_margin` (default 1 day).
    pub refresh_margin: i64,
    /// Also refresh in the background once an entry is this old, to pick up collateral that
    /// Intel re-issued before nextUpdate (TCB recovery); default 1 day. A copy loaded from
    /// persistence counts as old.
    pub max_age: i64,
    /// After any fetch attempt for a platform, the next may start only this much later
    /// (default 300 s): throttles refreshes of collateral that is already inside the margin, and
    /// retries against a failing source.
    pub retry_interval: i64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            refresh_margin: 86_400,
            max_age: 86_400,
            retry_interval: 300,
        }
    }
}

/// Counters since start; the service exports them as metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCounters {
    /// Requests answered from the cache (including while a refresh runs or failed).
    pub hits: u64,
    /// Requests with no cached entry (fetched in the foreground).
    pub misses: u64,
    /// Refresh attempts of a cached entry (ahead of expiry in the background, or after expiry).
    pub refreshes: u64,
    /// Failed fetches (foreground or background).
    pub errors: u64,
    /// Entries restored from persistence.
    pub persisted_loads: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    refreshes: AtomicU64,
    errors: AtomicU64,
    persisted_loads: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The timing state of one entry (what [`plan`] looks at).
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntryState {
    valid_until: i64,
    fetched_at: i64,
    retry_after: i64,
    refreshing: bool,
    last_error: Option<SourceError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// Serve the cached copy.
    Serve,
    /// Serve the cached copy and start a background refresh.
    ServeAndRefresh,
    /// Fetch in the foreground (no entry, or the entry has expired).
    Fetch,
    /// The entry expired and the last fetch failed within `retry_interval`: return its error.
    Fail(SourceError),
}

/// What to do for a request at `now`. Pure.
fn plan(entry: Option<&EntryState>, now: i64, cfg: &CacheConfig) -> Plan {
    let Some(e) = entry else {
        return Plan::Fetch;
    };
    if now >= e.valid_until {
        if e.refreshing {
            // A background refresh outlived the copy: do not serve expired collateral meanwhile.
            return Plan::Fetch;
        }
        if now < e.retry_after {
            // The newest copy the source had is itself expired (the verifier reports that),
            // or the last attempt failed and the source is not asked again yet.
            return match &e.last_error {
                Some(err) => Plan::Fail(err.clone()),
                None => Plan::Serve,
            };
        }
        return Plan::Fetch;
    }
    let due = e
        .valid_until
        .saturating_sub(cfg.refresh_margin)
        .min(e.fetched_at.saturating_add(cfg.max_age));
    if now >= due && now >= e.retry_after && !e.refreshing {
        Plan::ServeAndRefresh
    } else {
        Plan::Serve
    }
}

/// The shared result of one foreground fetch.
type FetchCell = tokio::sync::OnceCell<Result<Arc<Collateral>, SourceError>>;

struct Entry {
    collateral: Arc<Collateral>,
    state: EntryState,
}

struct Inner {
    source: Arc<dyn CollateralSource>,
    clock: Arc<dyn Clock>,
    config: CacheConfig,
    persistence: Option<Arc<dyn CollateralPersistence>>,
    entries: Mutex<HashMap<PlatformId, Entry>>,
    in_flight: Mutex<HashMap<PlatformId, Arc<FetchCell>>>,
    background: Mutex<Vec<JoinHandle<()>>>,
    counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Caches any [`CollateralSource`] per platform until the earliest nextUpdate of its parts,
/// refreshes ahead of expiry in the background while serving the cached copy, and keeps serving
/// a still-valid copy when a refresh fails (stale-while-error: a warning is logged and
/// [`CacheCounters::errors`] counts it). After `valid_until`, a copy is no longer served unless
/// the source itself has nothing newer.
///
/// Concurrent requests that need a foreground fetch for one platform share it (single
/// flight); background refreshes are one at a time per platform. Persistence saves run on the
/// blocking pool. Background refreshes need a tokio runtime (requests come from one).
#[derive(Clone)]
pub struct CollateralCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CollateralCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollateralCache")
            .field("config", &self.inner.config)
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl CollateralCache {
    /// A cache in front of `source`.
    pub fn new(
        source: Arc<dyn CollateralSource>,
        clock: Arc<dyn Clock>,
        config: CacheConfig,
    ) -> Self {
        Self::build(source, clock, config, None)
    }

    /// A cache that restores entries from `persistence` on first use and saves every fetched
    /// collateral to it.
    pub fn with_persistence(
        source: Arc<dyn CollateralSource>,
        clock: Arc<dyn Clock>,
        config: CacheConfig,
        persistence: Arc<dyn CollateralPersistence>,
    ) -> Self {
        Self::build(source, clock, config, Some(persistence))
    }

    fn build(
        source: Arc<dyn CollateralSource>,
        clock: Arc<dyn Clock>,
        config: CacheConfig,
        persistence: Option<Arc<dyn CollateralPersistence>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                clock,
                config,
                persistence,
                entries: Mutex::new(HashMap::new()),
                in_flight: Mutex::new(HashMap::new()),
                background: Mutex::new(Vec::new()),
                counters: Counters::default(),
            }),
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> CacheCounters {
        let c = &self.inner.counters;
        CacheCounters {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            refreshes: c.refreshes.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            persisted_loads: c.persisted_loads.load(Ordering::Relaxed),
        }
    }

    /// Number of cached platforms.
    pub fn len(&self) -> usize {
        lock(&self.inner.entries).len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `valid_until` (earliest nextUpdate, Unix seconds) of the cached entry for `id`.
    pub fn valid_until(&self, id: &PlatformId) -> Option<i64> {
        lock(&self.inner.entries)
            .get(id)
            .map(|e| e.state.valid_until)
    }

    /// Waits for the background refreshes started so far (tests, graceful shutdown).
    pub async fn settle(&self) {
        let handles: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.inner.background));
        for h in handles {
            // A refresh task does not panic; a cancelled one has nothing to report.
            let _ = h.await;
        }
    }

    /// The collateral for `id`, from the cache when possible, at the cache's clock.
    pub async fn get(&self, id: &PlatformId) -> Result<Arc<Collateral>, SourceError> {
        self.get_at(id, self.inner.clock.now()).await
    }

    /// The collateral for `id` as judged at `now` (the service reads its clock once per request
    /// and passes the time down).
    pub async fn get_at(&self, id: &PlatformId, now: i64) -> Result<Arc<Collateral>, SourceError> {
        if self.inner.persistence.is_some() && !lock(&self.inner.entries).contains_key(id) {
            self.restore(id, now);
        }
        let existed = {
            let mut entries = lock(&self.inner.entries);
            let entry = entries.get_mut(id);
            let p = plan(entry.as_ref().map(|e| &e.state), now, &self.inner.config);
            match (&p, entry) {
                (Plan::Serve, Some(e)) => {
                    bump(&self.inner.counters.hits);
                    return Ok(e.collateral.clone());
                }
                (Plan::ServeAndRefresh, Some(e)) => {
                    bump(&self.inner.counters.hits);
                    bump(&self.inner.counters.refreshes);
                    e.state.refreshing = true;
                    e.state.retry_after = now.saturating_add(self.inner.config.retry_interval);
                    let served = e.collateral.clone();
                    drop(entries);
                    self.spawn_refresh(*id, now);
                    return Ok(served);
                }
                (Plan::Fail(err), _) => {
                    bump(&self.inner.counters.errors);
                    return Err(err.clone());
                }
                (_, Some(_)) => {
                    bump(&self.inner.counters.refreshes);
                    true
                }
                (_, None) => {
                    bump(&self.inner.counters.misses);
                    false
                }
            }
        };
        self.fetch_shared(id, now, existed).await
    }

    /// A foreground fetch, shared by the concurrent requests for one platform (single flight):
    /// the first runs it, the others wait for its result. If the first is cancelled, a waiter
    /// takes over.
    async fn fetch_shared(
        &self,
        id: &PlatformId,
        now: i64,
        existed: bool,
    ) -> Result<Arc<Collateral>, SourceError> {
        let cell = {
            let mut in_flight = lock(&self.inner.in_flight);
            match in_flight.get(id) {
                Some(c) if !c.initialized() => c.clone(),
                _ => {
                    let c = Arc::new(FetchCell::new());
                    in_flight.insert(*id, c.clone());
                    c
                }
            }
        };
        let result = cell
            .get_or_init(|| async {
                match fetch_checked(&self.inner, id).await {
                    Ok((c, valid_until)) => Ok(store(&self.inner, id, c, valid_until, now).await),
                    Err(err) => {
                        bump(&self.inner.counters.errors);
                        if existed {
                            record_failure(&self.inner, id, &err, now);
                        }
                        Err(err)
                    }
                }
            })
            .await
            .clone();
        let mut in_flight = lock(&self.inner.in_flight);
        if in_flight.get(id).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            in_flight.remove(id);
        }
        result
    }

    /// Loads the entry for `id` from persistence if it is not in memory.
    fn restore(&self, id: &PlatformId, now: i64) {
        let Some(p) = &self.inner.persistence else {
            return;
        };
        if lock(&self.inner.entries).contains_key(id) {
            return;
        }
        let key = id.key();
        let Some(json) = p.load(&key) else {
            return;
        };
        let restored = Collateral::from_json(json.as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|c| {
                pcs::check(&c, id, "persisted", "persisted")
                    .map(|v| (c, v))
                    .map_err(|e| e.to_string())
            });
        match restored {
            Ok((c, valid_until)) => {
                bump(&self.inner.counters.persisted_loads);
                lock(&self.inner.entries).entry(*id).or_insert(Entry {
                    collateral: Arc::new(c),
                    state: EntryState {
                        valid_until,
                        // Unknown age: refresh in the background at first use.
                        fetched_at: i64::MIN,
                        retry_after: i64::MIN,
                        refreshing: false,
                        last_error: None,
                    },
                });
            }
            Err(e) => {
                tracing::warn!(key, error = %e, now, "ignoring unusable persisted collateral");
            }
        }
    }

    fn spawn_refresh(&self, id: PlatformId, now: i64) {
        let inner = self.inner.clone();
        let handle = tokio::spawn(async move {
            match fetch_checked(&inner, &id).await {
                Ok((c, valid_until)) => {
                    store(&inner, &id, c, valid_until, now).await;
                }
                Err(err) => {
                    bump(&inner.counters.errors);
                    tracing::warn!(
                        platform = %id,
                        error = %err,
                        "collateral refresh failed; serving the cached copy while it is valid"
                    );
                    record_failure(&inner, &id, &err, now);
                }
            }
        });
        let mut bg = lock(&self.inner.background);
        bg.retain(|h| !h.is_finished());
        bg.push(handle);
    }
}

async fn fetch_checked(inner: &Inner, id: &PlatformId) -> Result<(Collateral, i64), SourceError> {
    let c = inner.source.fetch(id).await?;
    let valid_until = pcs::check(&c, id, "the source's TCB info", "the source's QE identity")?;
    Ok((c, valid_until))
}

async fn store(
    inner: &Inner,
    id: &PlatformId,
    c: Collateral,
    valid_until: i64,
    now: i64,
) -> Arc<Collateral> {
    if let Some(p) = &inner.persistence {
        // The store may fsync: off the async worker threads.
        let (p, key, json) = (p.clone(), id.key(), c.to_json());
        if let Err(e) = tokio::task::spawn_blocking(move || p.save(&key, &json)).await {
            tracing::warn!(platform = %id, error = %e, "persisting collateral failed");
        }
    }
    let c = Arc::new(c);
    lock(&inner.entries).insert(
        *id,
        Entry {
            collateral: c.clone(),
            state: EntryState {
                valid_until,
                fetched_at: now,
                retry_after: now.saturating_add(inner.config.retry_interval),
                refreshing: false,
                last_error: None,
            },
        },
    );
    c
}

fn record_failure(inner: &Inner, id: &PlatformId, err: &SourceError, now: i64) {
    if let Some(e) = lock(&inner.entries).get_mut(id) {
        e.state.refreshing = false;
        e.state.retry_after = now.saturating_add(inner.config.retry_interval);
        e.state.last_error = Some(err.clone());
    }
}

impl CollateralSource for CollateralCache {
    fn fetch(&self, id: &PlatformId) -> SourceFuture<'_> {
        let id = *id;
        Box::pin(async move { self.get(&id).await.map(|c| (*c).clone()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: CacheConfig = CacheConfig {
        refresh_margin: 100,
        max_age: 1_000,
        retry_interval: 10,
    };

    fn st(valid_until: i64, fetched_at: i64, retry_after: i64) -> EntryState {
        EntryState {
            valid_until,
            fetched_at,
            retry_after,
            refreshing: false,
            last_error: None,
        }
    }

    #[test]
    fn plan_table() {
        let err = SourceError::Unavailable {
            location: "u".into(),
            reason: "HTTP 503".into(),
        };
        let failed = EntryState {
            last_error: Some(err.clone()),
            ..st(500, 0, 510)
        };
        let refreshing = EntryState {
            refreshing: true,
            ..st(500, 0, 0)
        };
        let cases: Vec<(Option<EntryState>, i64, Plan)> = vec![
            (None, 0, Plan::Fetch),
            (Some(st(500, 0, 10)), 5, Plan::Serve),
            (Some(st(500, 0, 10)), 399, Plan::Serve),
            (Some(st(500, 0, 10)), 400, Plan::ServeAndRefresh),
            (Some(st(500, 0, 450)), 400, Plan::Serve),
            (Some(refreshing.clone()), 450, Plan::Serve),
            (Some(st(5_000, 0, 10)), 999, Plan::Serve),
            (Some(st(5_000, 0, 10)), 1_000, Plan::ServeAndRefresh),
            (Some(st(500, i64::MIN, i64::MIN)), 0, Plan::ServeAndRefresh),
            (Some(st(500, 0, 10)), 500, Plan::Fetch),
            (Some(st(500, 495, 505)), 501, Plan::Serve),
            (Some(st(500, 495, 505)), 505, Plan::Fetch),
            (Some(failed.clone()), 505, Plan::Fail(err)),
            (Some(failed), 510, Plan::Fetch),
            (Some(refreshing), 500, Plan::Fetch),
            (
                Some(st(i64::MAX, i64::MIN, i64::MIN)),
                i64::MAX - 1,
                Plan::ServeAndRefresh,
            ),
        ];
        for (i, (e, now, want)) in cases.into_iter().enumerate() {
            assert_eq!(plan(e.as_ref(), now, &CFG), want, "case {i}");
        }
    }
}
