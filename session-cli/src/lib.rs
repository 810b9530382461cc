//! `sessionctl`, the successor of the original `memd.pl`: show / set / delete /
//! find-by-principal / stats on any store. **Not built yet.**
//!
//! Planned by its own issue (with the Perl Storable interop). Until then this
//! crate deliberately exports nothing.
