//! FTP replies: codes named by their meaning, RFC 959 single- and multi-line encoding, and the
//! mapping from filesystem errors to reply codes. Knows nothing about sockets.

use std::io;

/// Reply codes, named after what they mean (RFC 959 §4.2, RFC 2228, RFC 2428, RFC 3659, RFC 4217).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Code {
    FileStatusOkay = 150,
    CommandOkay = 200,
    NotImplementedSuperfluous = 202,
    SystemStatus = 211,
    FileStatus = 213,
    HelpMessage = 214,
    SystemType = 215,
    ServiceReady = 220,
    Closing = 221,
    DataConnectionOpen = 225,
    ClosingDataConnection = 226,
    EnteringPassive = 227,
    EnteringExtendedPassive = 229,
    LoggedIn = 230,
    SecurityExchangeDone = 234,
    FileActionOkay = 250,
    PathCreated = 257,
    NeedPassword = 331,
    PendingFurtherInfo = 350,
    ServiceNotAvailable = 421,
    CantOpenDataConnection = 425,
    TransferAborted = 426,
    FileUnavailableBusy = 450,
    LocalError = 451,
    InsufficientStorage = 452,
    SyntaxError = 500,
    ParameterSyntaxError = 501,
    NotImplemented = 502,
    BadSequence = 503,
    ParameterNotImplemented = 504,
    ProtLevelRefused = 521,
    ProtocolNotSupported = 522,
    NotLoggedIn = 530,
    DeniedByPolicy = 534,
    ProtLevelNotSupported = 536,
    FileUnavailable = 550,
    NameNotAllowed = 553,
    RequestedActionNotTaken = 554,
}

/// One reply. `text` is bytes, not `String`, because it may carry file names that are not UTF-8.
/// A `text` with several lines is sent as an RFC 959 multi-line reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: Code,
    pub text: Vec<u8>,
}

impl Reply {
    pub fn new(code: Code, text: impl Into<Vec<u8>>) -> Reply {
        Reply { code, text: text.into() }
    }

    /// Maps a filesystem error to the reply a client can act on.
    pub fn from_io(err: &io::Error) -> Reply {
        use io::ErrorKind::*;
        match err.kind() {
            NotFound => Reply::new(Code::FileUnavailable, "No such file or directory."),
            PermissionDenied => Reply::new(Code::FileUnavailable, "Permission denied."),
            AlreadyExists => Reply::new(Code::FileUnavailable, "File exists."),
            NotADirectory => Reply::new(Code::FileUnavailable, "Not a directory."),
            IsADirectory => Reply::new(Code::FileUnavailable, "Is a directory."),
            DirectoryNotEmpty => Reply::new(Code::FileUnavailable, "Directory not empty."),
            InvalidInput | InvalidFilename => Reply::new(Code::NameNotAllowed, "File name not allowed."),
            StorageFull | QuotaExceeded => Reply::new(Code::InsufficientStorage, "Insufficient storage space."),
            _ => Reply::new(Code::LocalError, format!("Local error: {err}.")),
        }
    }

    /// Appends the wire form: `123 text\r\n`, or for several lines
    /// `123-first\r\n continued\r\n123 last\r\n` (RFC 959 §4.2). Inner lines start with a space so
    /// that a line that happens to begin with digits cannot end the reply early.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let code = self.code as u16;
        let lines: Vec<&[u8]> = self.text.split(|&b| b == b'\n').collect();
        let last = lines.len() - 1;
        for (i, line) in lines.iter().enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if i == 0 {
                let sep = if last == 0 { ' ' } else { '-' };
                out.extend_from_slice(format!("{code}{sep}").as_bytes());
            } else if i == last {
                out.extend_from_slice(format!("{code} ").as_bytes());
            } else {
                out.push(b' ');
            }
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The reply as one log-friendly line.
    pub fn summary(&self) -> String {
        format!("{} {}", self.code as u16, String::from_utf8_lossy(&self.text).replace('\n', " | "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(reply: Reply) -> String {
        let mut out = Vec::new();
        reply.encode(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn single_line() {
        assert_eq!(wire(Reply::new(Code::CommandOkay, "OK.")), "200 OK.\r\n");
    }

    #[test]
    fn multi_line_per_rfc959() {
        let reply = Reply::new(Code::SystemStatus, "Features:\nUTF8\nSIZE\nEnd");
        assert_eq!(wire(reply), "211-Features:\r\n UTF8\r\n SIZE\r\n211 End\r\n");
    }

    #[test]
    fn io_errors_map_to_codes() {
        let not_found = io::Error::from(io::ErrorKind::NotFound);
        assert_eq!(Reply::from_io(&not_found).code, Code::FileUnavailable);
        let full = io::Error::from(io::ErrorKind::StorageFull);
        assert_eq!(Reply::from_io(&full).code, Code::InsufficientStorage);
    }
}
