//! What a session tells the loop happened, for the metrics and the transfer log: logins and
//! the end of each file transfer. Plain values; the session queues them and the loop takes them
//! (`Session::take_events`) after each turn of the connection.

use crate::fs::VPath;
use std::net::IpAddr;
use std::time::Instant;

pub enum SessionEvent {
    LoggedIn,
    LoginFailed,
    /// A file transfer (`RETR`, `STOR`, `APPE`, `STOU`; listings are not reported) ended.
    TransferEnded(TransferRecord),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Server to client (`RETR`).
    Out,
    /// Client to server (`STOR`, `APPE`, `STOU`).
    In,
}

/// How a transfer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Every byte moved (226).
    Complete,
    /// The client cut it short: `ABOR`, a closed control connection, or a data connection that
    /// broke or stalled (426).
    Aborted,
    /// The data connection never came (425): nothing was transferred.
    NoConnection,
    /// Reading or writing the file failed here (451, 452).
    Failed,
}

/// One ended transfer, as the transfer log and the metrics need it.
#[derive(Clone, Debug)]
pub struct TransferRecord {
    pub direction: Direction,
    /// The path as the client sees it: `/` is the served root.
    pub path: VPath,
    pub ascii: bool,
    pub user: String,
    pub anonymous: bool,
    pub peer: IpAddr,
    pub started: Instant,
    /// Bytes moved over the data connection; `None` when the session cannot know (a transfer
    /// cut short), and then the loop fills it in from the data connection.
    pub bytes: Option<u64>,
    pub completion: Completion,
}
