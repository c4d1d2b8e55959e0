//! The filesystem side: the virtual root (the only place user input becomes a real path),
//! listings, and the byte sources and sinks of transfers. No sockets, no reply codes.

pub mod listing;
pub mod root;
pub mod transfer;

pub use root::{Entry, Root, VPath};
