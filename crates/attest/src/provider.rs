//! Wiring between the collateral sources ([`crate::collateral`]) and the service: the
//! [`CollateralProvider`] seam over a [`CollateralCache`], the redb persistence of cached
//! collateral, and a clock that honours a pinned verification time.

use crate::collateral::{
    Clock, CollateralCache, CollateralPersistence, PckCaType, PlatformId, SourceError,
};
use crate::server::{BoxFuture, CollateralProvider, ProviderError};
use crate::store::{Store, Table};
use dcap::{Collateral, PckPlatform};
use std::sync::Arc;

/// The platform key of a quote's PCK certificate.
pub fn platform_id(p: &PckPlatform) -> PlatformId {
    let ca = if p.platform_ca {
        PckCaType::Platform
    } else {
        PckCaType::Processor
    };
    PlatformId::new(p.fmspc, ca).with_tdx(p.tdx)
}

impl CollateralProvider for CollateralCache {
    fn collateral<'a>(
        &'a self,
        platform: &'a PckPlatform,
        _now: i64,
    ) -> BoxFuture<'a, Result<Arc<Collateral>, ProviderError>> {
        Box::pin(async move {
            let id = platform_id(platform);
            self.get(&id).await.map_err(|e| match e {
                SourceError::NotFound { .. } => ProviderError::NotFound {
                    fmspc: id.fmspc_hex(),
                    message: e.to_string(),
                },
                other => ProviderError::Unavailable(other.to_string()),
            })
        })
    }

    fn cache_stats(&self) -> Vec<(&'static str, u64)> {
        let c = self.counters();
        vec![
            ("hit", c.hits),
            ("miss", c.misses),
            ("refresh", c.refreshes),
            ("error", c.errors),
            ("persisted_load", c.persisted_loads),
        ]
    }
}

/// Cached collateral persisted in the embedded store.
#[derive(Debug, Clone)]
pub struct StorePersistence(pub Arc<Store>);

impl CollateralPersistence for StorePersistence {
    fn load(&self, key: &str) -> Option<String> {
        match self.0.get(Table::Collateral, key) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, key, "cannot load cached collateral");
                None
            }
        }
    }

    fn save(&self, key: &str, json: &str) {
        if let Err(e) = self.0.put(Table::Collateral, key, json) {
            tracing::warn!(error = %e, key, "cannot persist collateral");
        }
    }
}

/// The system clock, or a pinned time (`--at`).
#[derive(Debug, Clone, Copy)]
pub struct ServiceClock(pub Option<i64>);

impl Clock for ServiceClock {
    fn now(&self) -> i64 {
        self.0
            .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp())
    }
}
