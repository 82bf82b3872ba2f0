//! The confkube attestation service library.
pub mod collateral;
