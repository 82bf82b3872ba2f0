//! The collateral cache over the real PCS/PCCS client and the stand-in serving the icelake set,
//! with an injected clock: hits, expiry and refetch, refresh ahead of expiry, stale-while-error,
//! persistence round trip.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod collateral_support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use attest::collateral::{
    CacheConfig, CacheCounters, CollateralCache, CollateralPersistence, CollateralSource,
    OfflineDir, PccsClient, PccsConfig, PckCaType, PlatformId, SourceError, SourceFuture,
};
use collateral_support::{Knobs, Pcs, TestClock, assert_verifies, icelake, mobilecoin};

/// 2025-08-20T00:00:00Z, inside the icelake window.
const T0: i64 = 1_755_648_000;
/// 2025-09-14T04:36:46Z: the QE identity's nextUpdate, the earliest of the set.
const VALID_UNTIL: i64 = 1_757_824_606;

const CFG: CacheConfig = CacheConfig {
    refresh_margin: 3_600,
    max_age: 100 * 86_400,
    retry_interval: 60,
};

async fn setup() -> Option<(Arc<Pcs>, Arc<PccsClient>, String)> {
    let pcs = Pcs::new(icelake()?);
    let base = pcs.serve().await;
    let client = PccsClient::new(PccsConfig::new(format!("{base}/sgx/certification/v4"))).unwrap();
    Some((pcs, Arc::new(client), base))
}

fn counters(hits: u64, misses: u64, refreshes: u64, errors: u64) -> CacheCounters {
    CacheCounters {
        hits,
        misses,
        refreshes,
        errors,
        persisted_loads: 0,
    }
}

fn tcb_hits(pcs: &Pcs) -> usize {
    pcs.tcb_hits.load(Ordering::SeqCst)
}

#[tokio::test]
async fn hit_then_expiry_refetch() {
    let Some((pcs, client, _)) = setup().await else {
        return;
    };
    let clock = TestClock::at(T0);
    let cache = CollateralCache::new(client, clock.clone(), CFG);
    let id = pcs.set.id;

    let first = cache.get(&id).await.unwrap();
    assert_eq!(cache.counters(), counters(0, 1, 0, 0));
    assert_eq!(tcb_hits(&pcs), 1);
    assert_eq!(cache.valid_until(&id), Some(VALID_UNTIL));
    assert_verifies(&pcs.set, &first);

    let again = cache.get(&id).await.unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(cache.counters(), counters(1, 1, 0, 0));
    assert_eq!(tcb_hits(&pcs), 1);

    // At nextUpdate the copy has expired: fetched again in the foreground.
    clock.set(VALID_UNTIL);
    let refetched = cache.get(&id).await.unwrap();
    assert!(!Arc::ptr_eq(&first, &refetched));
    assert_eq!(refetched.digest(), first.digest());
    assert_eq!(cache.counters(), counters(1, 1, 1, 0));
    assert_eq!(tcb_hits(&pcs), 2);

    // The source had nothing newer: its copy is served (the verifier reports the expiry) and
    // the source is not asked again within the retry interval...
    clock.set(VALID_UNTIL + 59);
    assert!(Arc::ptr_eq(&refetched, &cache.get(&id).await.unwrap()));
    assert_eq!(cache.counters(), counters(2, 1, 1, 0));
    assert_eq!(tcb_hits(&pcs), 2);
    // ...but after it.
    clock.set(VALID_UNTIL + 60);
    cache.get(&id).await.unwrap();
    assert_eq!(cache.counters(), counters(2, 1, 2, 0));
    assert_eq!(tcb_hits(&pcs), 3);
    assert_eq!(cache.len(), 1);
}

#[tokio::test]
async fn refresh_ahead_serves_the_cached_copy_and_refreshes_in_the_background() {
    let Some((pcs, client, _)) = setup().await else {
        return;
    };
    let clock = TestClock::at(T0);
    let cache = CollateralCache::new(client, clock.clone(), CFG);
    let id = pcs.set.id;
    let first = cache.get(&id).await.unwrap();

    // Just before the margin: a plain hit.
    clock.set(VALID_UNTIL - 3_601);
    assert!(Arc::ptr_eq(&first, &cache.get(&id).await.unwrap()));
    assert_eq!(cache.counters(), counters(1, 1, 0, 0));

    // Inside the margin: the cached copy now, a refresh behind it.
    clock.set(VALID_UNTIL - 1_800);
    let served = cache.get(&id).await.unwrap();
    assert!(Arc::ptr_eq(&first, &served));
    assert_eq!(cache.counters(), counters(2, 1, 1, 0));
    cache.settle().await;
    assert_eq!(tcb_hits(&pcs), 2);
    assert_eq!(pcs.hits(), 8);

    // The refreshed copy is served; no second refresh within the retry interval.
    let next = cache.get(&id).await.unwrap();
    assert!(!Arc::ptr_eq(&first, &next));
    assert_eq!(next.digest(), first.digest());
    cache.settle().await;
    assert_eq!(cache.counters(), counters(3, 1, 1, 0));
    assert_eq!(tcb_hits(&pcs), 2);
}

#[tokio::test]
async fn max_age_triggers_a_background_refresh() {
    let Some((pcs, client, _)) = setup().await else {
        return;
    };
    let clock = TestClock::at(T0);
    let cfg = CacheConfig {
        max_age: 86_400,
        ..CFG
    };
    let cache = CollateralCache::new(client, clock.clone(), cfg);
    cache.get(&pcs.set.id).await.unwrap();
    clock.set(T0 + 86_399);
    cache.get(&pcs.set.id).await.unwrap();
    assert_eq!(cache.counters(), counters(1, 1, 0, 0));
    clock.set(T0 + 86_400);
    cache.get(&pcs.set.id).await.unwrap();
    cache.settle().await;
    assert_eq!(cache.counters(), counters(2, 1, 1, 0));
    assert_eq!(tcb_hits(&pcs), 2);
}

#[tokio::test]
async fn stale_while_error_then_error_after_expiry() {
    let Some((pcs, client, base)) = setup().await else {
        return;
    };
    let clock = TestClock::at(T0);
    let cache = CollateralCache::new(client, clock.clone(), CFG);
    let id = pcs.set.id;
    let first = cache.get(&id).await.unwrap();

    pcs.set_knobs(Knobs {
        status: Some(503),
        ..Knobs::default()
    });
    // Inside the margin: served from cache; the background refresh fails.
    clock.set(VALID_UNTIL - 1_800);
    assert!(Arc::ptr_eq(&first, &cache.get(&id).await.unwrap()));
    cache.settle().await;
    assert_eq!(cache.counters(), counters(1, 1, 1, 1));
    assert_eq!(tcb_hits(&pcs), 2);

    // Still valid: still served, and the failing source is left alone for the retry interval.
    clock.set(VALID_UNTIL - 1_750);
    assert!(Arc::ptr_eq(&first, &cache.get(&id).await.unwrap()));
    cache.settle().await;
    assert_eq!(cache.counters(), counters(2, 1, 1, 1));
    assert_eq!(tcb_hits(&pcs), 2);

    // After it, another background attempt; the copy is still served.
    clock.set(VALID_UNTIL - 1_740);
    assert!(Arc::ptr_eq(&first, &cache.get(&id).await.unwrap()));
    cache.settle().await;
    assert_eq!(cache.counters(), counters(3, 1, 2, 2));
    assert_eq!(tcb_hits(&pcs), 3);

    // Expired: no longer served; the foreground fetch fails with the source's error.
    let unavailable = SourceError::Unavailable {
        location: format!("{base}/sgx/certification/v4/tcb?fmspc=00606A000000"),
        reason: "HTTP 503 Service Unavailable".into(),
    };
    clock.set(VALID_UNTIL);
    assert_eq!(cache.get(&id).await.unwrap_err(), unavailable);
    assert_eq!(cache.counters(), counters(3, 1, 3, 3));
    assert_eq!(tcb_hits(&pcs), 4);
    // Within the retry interval the last error is returned without asking the source.
    clock.set(VALID_UNTIL + 59);
    assert_eq!(cache.get(&id).await.unwrap_err(), unavailable);
    assert_eq!(cache.counters(), counters(3, 1, 3, 4));
    assert_eq!(tcb_hits(&pcs), 4);

    // The source recovers.
    pcs.set_knobs(Knobs::default());
    clock.set(VALID_UNTIL + 60);
    let back = cache.get(&id).await.unwrap();
    assert_eq!(back.digest(), first.digest());
    assert_eq!(cache.counters(), counters(3, 1, 4, 4));
    assert_eq!(tcb_hits(&pcs), 5);
}

/// An in-memory persistence fixture (the service implements the trait over its store).
#[derive(Default)]
struct Mem(Mutex<HashMap<String, String>>);

impl CollateralPersistence for Mem {
    fn load(&self, key: &str) -> Option<String> {
        self.0.lock().unwrap().get(key).cloned()
    }
    fn save(&self, key: &str, json: &str) {
        self.0.lock().unwrap().insert(key.into(), json.into());
    }
}

#[tokio::test]
async fn persistence_round_trip_serves_after_restart_while_the_source_is_down() {
    let Some((pcs, client, _)) = setup().await else {
        return;
    };
    let clock = TestClock::at(T0);
    let store = Arc::new(Mem::default());
    let id = pcs.set.id;

    let a = CollateralCache::with_persistence(client.clone(), clock.clone(), CFG, store.clone());
    let original = a.get(&id).await.unwrap();
    assert_eq!(
        store.load("00606a000000-platform").as_deref(),
        Some(original.to_json().as_str())
    );

    // "Restart" with the PCCS down: the persisted copy is served, and refreshed in the
    // background at first use (its age is unknown); the failed refresh keeps it.
    pcs.set_knobs(Knobs {
        status: Some(503),
        ..Knobs::default()
    });
    let b = CollateralCache::with_persistence(client.clone(), clock.clone(), CFG, store.clone());
    let restored = b.get(&id).await.unwrap();
    assert_eq!(restored.document(), original.document());
    assert_eq!(restored.digest(), original.digest());
    assert_verifies(&pcs.set, &restored);
    b.settle().await;
    assert_eq!(
        b.counters(),
        CacheCounters {
            hits: 1,
            misses: 0,
            refreshes: 1,
            errors: 1,
            persisted_loads: 1,
        }
    );
    assert_eq!(tcb_hits(&pcs), 2);
    pcs.set_knobs(Knobs::default());

    // Unusable persisted entries are ignored: garbage, and another platform's collateral.
    let other = mobilecoin().unwrap().derived.to_json();
    for bad in ["{garbage".to_string(), other] {
        store.save("00606a000000-platform", &bad);
        let c =
            CollateralCache::with_persistence(client.clone(), clock.clone(), CFG, store.clone());
        let got = c.get(&id).await.unwrap();
        assert_eq!(got.digest(), original.digest());
        assert_eq!(c.counters(), counters(0, 1, 0, 0));
        // The fresh copy replaced the bad one.
        assert_eq!(
            store.load("00606a000000-platform").as_deref(),
            Some(original.to_json().as_str())
        );
    }
}

#[tokio::test]
async fn errors_of_any_source_pass_through_without_an_entry() {
    let dir = collateral_support::scratch_dir("cache-offline-empty");
    let cache = CollateralCache::new(
        Arc::new(OfflineDir::new(&dir)),
        TestClock::at(T0),
        CacheConfig::default(),
    );
    let id = PlatformId::from_hex("00606a000000", PckCaType::Platform).unwrap();
    let d = dir.display();
    let not_found = SourceError::NotFound {
        fmspc: "00606a000000".into(),
        location: format!("{d}/00606a000000.json (nor {d}/00606a000000/)"),
    };
    assert_eq!(cache.get(&id).await.unwrap_err(), not_found);
    // As a CollateralSource trait object, too.
    let dynamic: Arc<dyn CollateralSource> = Arc::new(cache.clone());
    assert_eq!(dynamic.fetch(&id).await.unwrap_err(), not_found);
    assert_eq!(cache.counters(), counters(0, 2, 0, 2));
    assert!(cache.is_empty());
}

/// A source that hands out another platform's collateral.
struct WrongPlatform(dcap::Collateral);

impl CollateralSource for WrongPlatform {
    fn fetch(&self, _id: &PlatformId) -> SourceFuture<'_> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

#[tokio::test]
async fn the_cache_rejects_collateral_for_another_platform() {
    let Some(mob) = mobilecoin() else { return };
    let cache = CollateralCache::new(
        Arc::new(WrongPlatform(mob.derived)),
        TestClock::at(T0),
        CacheConfig::default(),
    );
    let id = PlatformId::from_hex("00606a000000", PckCaType::Platform).unwrap();
    assert_eq!(
        cache.get(&id).await.unwrap_err(),
        SourceError::Invalid {
            location: "the source's TCB info".into(),
            reason: "the TCB info is for FMSPC 00906ed50000, not 00606a000000".into(),
        }
    );
    assert!(cache.is_empty());
}

#[tokio::test]
async fn concurrent_misses_share_one_fetch() {
    let Some((pcs, client, base)) = setup().await else {
        return;
    };
    let cache = CollateralCache::new(client, TestClock::at(T0), CFG);
    let id = pcs.set.id;
    let (a, b, c) = tokio::join!(cache.get(&id), cache.get(&id), cache.get(&id));
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert!(Arc::ptr_eq(&a, &b) && Arc::ptr_eq(&a, &c));
    assert_eq!(pcs.hits(), 4);
    assert_eq!(cache.counters(), counters(0, 3, 0, 0));

    // A failing fetch is shared too: one request to the source, one error counted.
    let cache = CollateralCache::new(
        Arc::new(PccsClient::new(PccsConfig::new(format!("{base}/sgx/certification/v4"))).unwrap()),
        TestClock::at(T0),
        CFG,
    );
    pcs.set_knobs(Knobs {
        status: Some(503),
        ..Knobs::default()
    });
    let (a, b) = tokio::join!(cache.get(&id), cache.get(&id));
    assert_eq!(a.unwrap_err().kind(), "unavailable");
    assert_eq!(b.unwrap_err().kind(), "unavailable");
    assert_eq!(tcb_hits(&pcs), 2);
    assert_eq!(cache.counters(), counters(0, 2, 0, 1));
}
