//! The verifier with its verified-collateral cache.
//!
//! Verifying many quotes from one platform should not re-verify chains, CRLs and JSON signatures
//! each time. The cache keeps, per (collateral digest, trust anchor, options):
//! the verified collateral; under it, per PCK chain (by its exact bytes), the verified PCK
//! facts; and under that, the QE report bytes + signature already verified with that PCK key.
//! Every entry carries the intersection of the validity windows it was verified in; outside that
//! window it is verified afresh (which yields the precise expiry error). Only successes are
//! cached, and all sizes are bounded (oldest entry evicted first).

use crate::anchor::TrustAnchor;
use crate::collateral::Collateral;
use crate::error::VerifyError;
use crate::verify::{
    OnQeReportVerified, QeReportVerified, VerifiedCollateral, VerifiedPck, VerifiedQuote,
    VerifyOptions, pck_chain_source, verify_collateral, verify_pck_chain, verify_quote_with,
};
use sgx_types::Quote;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Cache sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Distinct collateral documents kept (0 disables the cache).
    pub collateral: usize,
    /// PCK chains kept per collateral document.
    pub pck_per_collateral: usize,
    /// Verified QE reports kept per PCK chain.
    pub qe_reports_per_pck: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self {
            collateral: 256,
            pck_per_collateral: 1024,
            qe_reports_per_pck: 4,
        }
    }
}

/// Cache counters, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Collateral found verified and still valid.
    pub collateral_hits: u64,
    /// Collateral verified afresh.
    pub collateral_misses: u64,
    /// PCK chains found verified and still valid.
    pub pck_hits: u64,
    /// PCK chains verified afresh.
    pub pck_misses: u64,
}

/// A bounded map that evicts its oldest insertion first.
#[derive(Debug)]
struct Bounded<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Bounded<K, V> {
    fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    fn get<Q>(&self, k: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(k).cloned()
    }

    fn insert(&mut self, k: K, v: V) {
        if self.cap == 0 {
            return;
        }
        if self.map.insert(k.clone(), v).is_none() {
            self.order.push_back(k);
            while self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock cannot leave these maps inconsistent (every
    // update is a single insert), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CollateralKey {
    digest: [u8; 32],
    anchor: Vec<u8>,
    options: VerifyOptions,
}

#[derive(Debug)]
struct CollateralEntry {
    key: CollateralKey,
    verified: VerifiedCollateral,
    pcks: Mutex<PckMap>,
}

/// The verified PCK chains of one collateral document, by their exact bytes, with the last
/// one used in front: quotes from one platform then find theirs by one comparison of the
/// chain (a `memcmp` of ~4 KB) instead of hashing it.
#[derive(Debug)]
struct PckMap {
    last: Option<Arc<PckEntry>>,
    map: Bounded<Box<[u8]>, Arc<PckEntry>>,
}

impl PckMap {
    fn get(&mut self, chain: &[u8]) -> Option<Arc<PckEntry>> {
        if let Some(e) = &self.last
            && *e.chain == *chain
        {
            return Some(e.clone());
        }
        let e = self.map.get(chain)?;
        self.last = Some(e.clone());
        Some(e)
    }

    fn insert(&mut self, e: Arc<PckEntry>) {
        if self.map.cap == 0 {
            return;
        }
        self.map.insert(e.chain.clone(), e.clone());
        self.last = Some(e);
    }
}

/// The verified collateral documents, with the last one used in front (found by comparing
/// the digest and anchor key, without building a map key).
#[derive(Debug)]
struct CollateralMap {
    last: Option<Arc<CollateralEntry>>,
    map: Bounded<CollateralKey, Arc<CollateralEntry>>,
}

/// A QE report (384 bytes) and its signature, already verified with a PCK key.
type VerifiedQeReport = (Box<[u8]>, [u8; 64]);

#[derive(Debug)]
struct PckEntry {
    chain: Box<[u8]>,
    verified: VerifiedPck,
    qe_reports: Mutex<Vec<VerifiedQeReport>>,
}

/// A DCAP quote verifier. Cheap to share across threads (`&self` everywhere).
#[derive(Debug)]
pub struct Verifier {
    options: VerifyOptions,
    limits: CacheLimits,
    entries: Mutex<CollateralMap>,
    collateral_hits: AtomicU64,
    collateral_misses: AtomicU64,
    pck_hits: AtomicU64,
    pck_misses: AtomicU64,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new(VerifyOptions::default())
    }
}

impl Verifier {
    /// A verifier with the default cache limits.
    pub fn new(options: VerifyOptions) -> Self {
        Self::with_limits(options, CacheLimits::default())
    }

    /// A verifier without a cache: every call verifies everything.
    pub fn uncached(options: VerifyOptions) -> Self {
        Self::with_limits(
            options,
            CacheLimits {
                collateral: 0,
                pck_per_collateral: 0,
                qe_reports_per_pck: 0,
            },
        )
    }

    /// A verifier with the given cache limits.
    pub fn with_limits(options: VerifyOptions, limits: CacheLimits) -> Self {
        Self {
            options,
            limits,
            entries: Mutex::new(CollateralMap {
                last: None,
                map: Bounded::new(limits.collateral),
            }),
            collateral_hits: AtomicU64::new(0),
            collateral_misses: AtomicU64::new(0),
            pck_hits: AtomicU64::new(0),
            pck_misses: AtomicU64::new(0),
        }
    }

    /// The options.
    pub fn options(&self) -> &VerifyOptions {
        &self.options
    }

    /// Cache counters so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            collateral_hits: self.collateral_hits.load(Ordering::Relaxed),
            collateral_misses: self.collateral_misses.load(Ordering::Relaxed),
            pck_hits: self.pck_hits.load(Ordering::Relaxed),
            pck_misses: self.pck_misses.load(Ordering::Relaxed),
        }
    }

    /// Verifies `quote` (raw bytes) against `collateral` at `now` (Unix seconds), trusting only
    /// `anchor`.
    pub fn verify(
        &self,
        quote: &[u8],
        collateral: &Collateral,
        now: i64,
        anchor: &TrustAnchor,
    ) -> Result<VerifiedQuote, VerifyError> {
        let q = Quote::parse(quote)?;
        self.verify_parsed_sgx(quote, &q, collateral, now, anchor)
    }

    /// [`Verifier::verify`] of `q`, parsed from exactly `raw`.
    pub(crate) fn verify_parsed_sgx(
        &self,
        raw: &[u8],
        q: &Quote,
        collateral: &Collateral,
        now: i64,
        anchor: &TrustAnchor,
    ) -> Result<VerifiedQuote, VerifyError> {
        self.with_verified(
            q,
            |q, c| pck_chain_source(&q.signature, c),
            collateral,
            now,
            anchor,
            |q, coll, pck, seen, record| verify_quote_with(raw, q, coll, pck, seen, record),
        )
    }

    /// Verifies (or finds verified in the cache) the collateral and the PCK chain that `chain`
    /// finds for the parsed quote `q`, then runs the per-quote checks `f` on `q` with them and
    /// the QE-report memo of that PCK chain.
    pub(crate) fn with_verified<Q, T>(
        &self,
        q: Q,
        chain: impl for<'q> FnOnce(&'q Q, &'q Collateral) -> Result<&'q [u8], VerifyError>,
        collateral: &Collateral,
        now: i64,
        anchor: &TrustAnchor,
        f: impl FnOnce(
            Q,
            &VerifiedCollateral,
            &VerifiedPck,
            QeReportVerified<'_>,
            OnQeReportVerified<'_>,
        ) -> Result<T, VerifyError>,
    ) -> Result<T, VerifyError> {
        let chain = chain(&q, collateral)?;
        let coll = self.collateral_entry(collateral, now, anchor)?;
        let pck = self.pck_entry(&coll, chain, now, anchor)?;
        let max_qe = self.limits.qe_reports_per_pck;
        f(
            q,
            &coll.verified,
            &pck.verified,
            &|report, sig| {
                lock(&pck.qe_reports)
                    .iter()
                    .any(|(r, s)| **r == *report && s == sig)
            },
            &|report, sig| {
                if max_qe > 0 {
                    let mut memo = lock(&pck.qe_reports);
                    if memo.len() >= max_qe {
                        memo.remove(0);
                    }
                    memo.push((report.into(), *sig));
                }
            },
        )
    }

    fn collateral_entry(
        &self,
        c: &Collateral,
        now: i64,
        anchor: &TrustAnchor,
    ) -> Result<Arc<CollateralEntry>, VerifyError> {
        let found = {
            let mut entries = lock(&self.entries);
            // The options are the verifier's own: equal in every key of this cache.
            match &entries.last {
                Some(e) if e.key.digest == *c.digest() && *e.key.anchor == *anchor.public_key() => {
                    Some(e.clone())
                }
                _ => {
                    let key = CollateralKey {
                        digest: *c.digest(),
                        anchor: anchor.public_key().to_vec(),
                        options: self.options.clone(),
                    };
                    let e = entries.map.get(&key);
                    if let Some(e) = &e {
                        entries.last = Some(e.clone());
                    }
                    e
                }
            }
        };
        if let Some(e) = found
            && e.verified.window.valid_at(now)
        {
            self.collateral_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(e);
        }
        self.collateral_misses.fetch_add(1, Ordering::Relaxed);
        let verified = verify_collateral(c, now, anchor, &self.options)?;
        let key = CollateralKey {
            digest: *c.digest(),
            anchor: anchor.public_key().to_vec(),
            options: self.options.clone(),
        };
        let entry = Arc::new(CollateralEntry {
            key: key.clone(),
            verified,
            pcks: Mutex::new(PckMap {
                last: None,
                map: Bounded::new(self.limits.pck_per_collateral),
            }),
        });
        if self.limits.collateral > 0 {
            let mut entries = lock(&self.entries);
            entries.map.insert(key, entry.clone());
            entries.last = Some(entry.clone());
        }
        Ok(entry)
    }

    fn pck_entry(
        &self,
        coll: &CollateralEntry,
        chain: &[u8],
        now: i64,
        anchor: &TrustAnchor,
    ) -> Result<Arc<PckEntry>, VerifyError> {
        if let Some(e) = lock(&coll.pcks).get(chain)
            && e.verified.window.valid_at(now)
        {
            self.pck_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(e);
        }
        self.pck_misses.fetch_add(1, Ordering::Relaxed);
        let verified = verify_pck_chain(chain, &coll.verified, now, anchor)?;
        let entry = Arc::new(PckEntry {
            chain: chain.into(),
            verified,
            qe_reports: Mutex::new(Vec::new()),
        });
        lock(&coll.pcks).insert(entry.clone());
        Ok(entry)
    }
}

/// Verifies one quote with no cache and default options (CRLs required).
pub fn verify(
    quote: &[u8],
    collateral: &Collateral,
    now: i64,
    anchor: &TrustAnchor,
) -> Result<VerifiedQuote, VerifyError> {
    Verifier::uncached(VerifyOptions::default()).verify(quote, collateral, now, anchor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_evicts_oldest() {
        let mut b = Bounded::new(2);
        b.insert(1, 'a');
        b.insert(2, 'b');
        b.insert(1, 'c'); // replace, no new order entry
        b.insert(3, 'd');
        assert_eq!(
            (b.get(&1), b.get(&2), b.get(&3)),
            (None, Some('b'), Some('d'))
        );
        let mut z = Bounded::new(0);
        z.insert(1, 'a');
        assert_eq!(z.get(&1), None);
    }
}
