//! SGX ABI vocabulary and one strict byte codec.
