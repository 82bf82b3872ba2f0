//! DCAP quote verification.
