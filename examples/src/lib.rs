//! Runnable examples live beside this crate as `examples/*.rs`; see the README.
