//! The memorycached SOAP bridge: the original `MemcachedSOAPClass` service
//! (`status`, `getSession`, `setSession`, namespace `urn:MemcachedSOAPClass`)
//! over any [`session_core::Store`]. **Not built yet.**
//!
//! Planned by its own issue: axum + quick-xml, byte-compatible with the
//! captured SOAP::Lite exchanges in `shared/reference/soap-wire.md`, plus
//! update/delete/touch/find-by-principal, a WSDL, limits and `/metrics`,
//! running on `MemoryStore` by default. Until then this crate deliberately
//! exports nothing.
