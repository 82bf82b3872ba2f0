//! Collateral sources.
