//! The FTP protocol, sans-IO: parsing commands, formatting replies, and the per-session state
//! machine. Nothing here touches mio or a socket, so every transition is unit-tested with values.

pub mod addr;
pub mod command;
pub mod event;
pub mod line;
pub mod reply;
pub mod session;

pub use command::Command;
pub use reply::{Code, Reply};
pub use session::{Effect, Session, Settings};
