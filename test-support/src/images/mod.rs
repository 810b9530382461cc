//! Images for the docker provider: the official ones where the daemon has or
//! can pull them, otherwise images built locally from the host's own binaries.
//!
//! A local image is a root filesystem holding only the server binary, every
//! shared library `ldd` lists (the dynamic loader included), a minimal
//! `/etc/passwd` and `/etc/group`, run as `nobody`. It is tagged
//! `memorycached/<server>:host-<version>` so later runs reuse it. Two ways to
//! build it, both through the Engine API (no docker CLI needed):
//! - **BuildKit** (`FROM scratch` + `COPY`), through testcontainers'
//!   `GenericBuildableImage`: the daemon's built-in BuildKit, reached with
//!   bollard's own session, so the `buildx` CLI plugin is not needed;
//! - **import** (what `docker import` does): a tar of the root filesystem
//!   posted to `/images/create?fromSrc=-` with `ENTRYPOINT`/`USER` changes,
//!   for daemons whose BuildKit is unavailable.
//!
//! Layout, one step per file, each depending only on the ones below it:
//! - `resolve.rs`: which image a provider uses ([`resolve`]), official or local;
//! - `build.rs`: building a local image, either way ([`build_images`], [`build_image`]);
//! - `host.rs`: the host binary, its version and the libraries `ldd` lists;
//! - `ustar.rs`: the tar writer for the import method;
//! - `spec.rs`: per server, the official image, the local name and the port.

mod build;
mod host;
mod resolve;
mod spec;
mod ustar;

pub use build::{BuildMethod, ImageAction, ImageReport, build_image, build_images};
pub(crate) use resolve::{ImageRef, resolve};
