//! Parsing one control line into a typed `Command`. Aliases (`XPWD`…) are folded here, argument
//! shape is checked here (missing → 501, malformed → 501, unsupported → 504, unknown verb → 502),
//! so the session only ever sees well-formed commands.

use super::addr;
use super::reply::{Code, Reply};
use crate::fs::listing;
use std::net::SocketAddr;
use std::time::SystemTime;

/// Representation type (`TYPE`): the only distinction that changes bytes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repr {
    Ascii,
    Binary,
}

/// Data protection level (`PROT`, RFC 2228/4217): clear, or private (TLS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    Clear,
    Private,
}

/// One parsed command. Path arguments stay bytes: file names need not be UTF-8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    User(String),
    Pass(String),
    Quit,
    Noop,
    Syst,
    Feat,
    Help(Option<String>),
    Opts(String),
    Acct,
    Allo,
    Rein,
    Abor,
    Stat(Option<Vec<u8>>),
    Site(String),
    Rest(u64),
    Rnfr(Vec<u8>),
    Rnto(Vec<u8>),
    Appe(Vec<u8>),
    Stou(Option<Vec<u8>>),
    Mlst(Option<Vec<u8>>),
    Mlsd(Option<Vec<u8>>),
    Mfmt(SystemTime, Vec<u8>),
    Pwd,
    Cwd(Vec<u8>),
    Cdup,
    Type(Repr),
    Mode,
    Stru,
    Pasv,
    Epsv,
    EpsvAll,
    Port(SocketAddr),
    List(Option<Vec<u8>>),
    Nlst(Option<Vec<u8>>),
    Retr(Vec<u8>),
    Stor(Vec<u8>),
    Size(Vec<u8>),
    Mdtm(Vec<u8>),
    Mkd(Vec<u8>),
    Rmd(Vec<u8>),
    Dele(Vec<u8>),
    /// `AUTH TLS` (and its aliases `SSL`, `TLS-C`, `TLS-P`).
    AuthTls,
    Pbsz,
    Prot(Protection),
    Ccc,
}

impl Command {
    /// The commands a client may send before logging in (RFC 959 leaves this to the server;
    /// these are the ones clients send while probing).
    pub fn allowed_before_login(&self) -> bool {
        use Command::*;
        matches!(
            self,
            User(_) | Pass(_) | Quit | Noop | Syst | Feat | Help(_) | Opts(_) | AuthTls | Pbsz | Prot(_) | Ccc
        )
    }
}

/// Every verb the server knows, with its syntax: the `HELP` text, kept beside the parser so the
/// two cannot drift apart (`every_listed_verb_parses` checks it).
pub const VERBS: &[(&str, &str)] = &[
    ("ABOR", "ABOR (abort the running transfer)"),
    ("ACCT", "ACCT <account> (not needed)"),
    ("ALLO", "ALLO <size> (not needed)"),
    ("APPE", "APPE <path> (append to a file)"),
    ("AUTH", "AUTH TLS (secure the control connection)"),
    ("CCC", "CCC (refused: the control connection stays protected)"),
    ("CDUP", "CDUP (go to the parent directory)"),
    ("CWD", "CWD <path>"),
    ("DELE", "DELE <path>"),
    ("EPRT", "EPRT |proto|addr|port|"),
    ("EPSV", "EPSV [1|2|ALL]"),
    ("FEAT", "FEAT (list extensions)"),
    ("HELP", "HELP [<command>]"),
    ("LIST", "LIST [<path>]"),
    ("MDTM", "MDTM <path>"),
    ("MFMT", "MFMT <YYYYMMDDHHMMSS> <path>"),
    ("MKD", "MKD <path>"),
    ("MLSD", "MLSD [<path>]"),
    ("MLST", "MLST [<path>]"),
    ("MODE", "MODE S"),
    ("NLST", "NLST [<path>]"),
    ("NOOP", "NOOP"),
    ("OPTS", "OPTS UTF8 ON | OPTS MLST <facts>"),
    ("PASS", "PASS <password>"),
    ("PASV", "PASV"),
    ("PBSZ", "PBSZ 0"),
    ("PORT", "PORT h1,h2,h3,h4,p1,p2"),
    ("PROT", "PROT C | PROT P (data in clear or over TLS)"),
    ("PWD", "PWD"),
    ("QUIT", "QUIT"),
    ("REIN", "REIN (log out, keep the connection)"),
    ("REST", "REST <offset> (resume the next RETR/STOR there)"),
    ("RETR", "RETR <path>"),
    ("RMD", "RMD <path>"),
    ("RNFR", "RNFR <path> (then RNTO)"),
    ("RNTO", "RNTO <path>"),
    ("SITE", "SITE HELP | SITE CHMOD <mode> <path>"),
    ("SIZE", "SIZE <path>"),
    ("STAT", "STAT [<path>]"),
    ("STOR", "STOR <path>"),
    ("STOU", "STOU [<name>] (store under a unique name)"),
    ("STRU", "STRU F"),
    ("SYST", "SYST"),
    ("TYPE", "TYPE A | TYPE I"),
    ("USER", "USER <name>"),
    ("XCUP", "XCUP (= CDUP)"),
    ("XCWD", "XCWD <path> (= CWD)"),
    ("XMKD", "XMKD <path> (= MKD)"),
    ("XPWD", "XPWD (= PWD)"),
    ("XRMD", "XRMD <path> (= RMD)"),
];

/// A control line as it may appear in logs: the password of `PASS` is hidden.
pub fn loggable(line: &[u8]) -> String {
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"PASS") {
        return "PASS ****".to_string();
    }
    String::from_utf8_lossy(line).into_owned()
}

/// Parses a control line (without its line ending).
pub fn parse(line: &[u8]) -> Result<Command, Reply> {
    let (verb, arg) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    let arg = arg.filter(|a| !a.is_empty());
    let verb = verb.to_ascii_uppercase();
    // A verb that is not even text is an unknown command (502), not an empty one.
    let verb = std::str::from_utf8(&verb).unwrap_or("\u{fffd}");
    let text = || arg.map(|a| String::from_utf8_lossy(a).into_owned());
    let required = || arg.map(<[u8]>::to_vec).ok_or_else(|| syntax("This command needs an argument."));
    let none = |cmd: Command| {
        if arg.is_some() { Err(syntax("This command takes no argument.")) } else { Ok(cmd) }
    };

    use Command::*;
    match verb {
        "USER" => required().map(|_| User(text().unwrap_or_default())),
        // An empty password is legal (RFC 959 allows "PASS" with nothing after it).
        "PASS" => Ok(Pass(text().unwrap_or_default())),
        "QUIT" => Ok(Quit),
        "NOOP" => Ok(Noop),
        "SYST" => Ok(Syst),
        "FEAT" => Ok(Feat),
        "HELP" => Ok(Help(text().map(|t| t.trim().to_ascii_uppercase()))),
        "ACCT" => Ok(Acct),
        "ALLO" => Ok(Allo),
        "REIN" => none(Rein),
        "ABOR" => none(Abor),
        "STAT" => Ok(Stat(listing_path(arg))),
        "SITE" => required().map(|_| Site(text().unwrap_or_default())),
        "REST" => {
            let offset = text().unwrap_or_default();
            offset.trim().parse().map(Rest).map_err(|_| syntax("REST needs a byte offset."))
        }
        "RNFR" => required().map(Rnfr),
        "RNTO" => required().map(Rnto),
        "APPE" => required().map(Appe),
        "STOU" => Ok(Stou(arg.map(<[u8]>::to_vec))),
        "MLST" => Ok(Mlst(arg.map(<[u8]>::to_vec))),
        "MLSD" => Ok(Mlsd(arg.map(<[u8]>::to_vec))),
        "MFMT" => parse_mfmt(required()?),
        "OPTS" => required().map(|_| Opts(text().unwrap_or_default())),
        "PWD" | "XPWD" => none(Pwd),
        "CWD" | "XCWD" => required().map(Cwd),
        "CDUP" | "XCUP" => none(Cdup),
        "TYPE" => parse_type(text()),
        "MODE" => parse_single_letter(text(), "S", Mode),
        "STRU" => parse_single_letter(text(), "F", Stru),
        "PASV" => none(Pasv),
        "EPSV" => match text().map(|t| t.trim().to_ascii_uppercase()).as_deref() {
            None | Some("1") | Some("2") => Ok(Epsv),
            Some("ALL") => Ok(EpsvAll),
            Some(_) => Err(Reply::new(Code::ProtocolNotSupported, "Network protocol not supported, use (1,2).")),
        },
        "PORT" => addr::parse_port(&text().unwrap_or_default()).map(Port).ok_or_else(|| syntax("Bad PORT argument.")),
        "EPRT" => addr::parse_eprt(&text().unwrap_or_default()).map(Port).ok_or_else(|| {
            Reply::new(Code::ProtocolNotSupported, "Bad EPRT argument; network protocol must be (1,2).")
        }),
        "LIST" => Ok(List(listing_path(arg))),
        "NLST" => Ok(Nlst(listing_path(arg))),
        "RETR" => required().map(Retr),
        "STOR" => required().map(Stor),
        "SIZE" => required().map(Size),
        "MDTM" => required().map(Mdtm),
        "MKD" | "XMKD" => required().map(Mkd),
        "RMD" | "XRMD" => required().map(Rmd),
        "DELE" => required().map(Dele),
        "AUTH" => match text().map(|t| t.trim().to_ascii_uppercase()).as_deref() {
            None => Err(syntax("AUTH needs a mechanism: AUTH TLS.")),
            Some("TLS" | "SSL" | "TLS-C" | "TLS-P") => Ok(AuthTls),
            Some(_) => Err(Reply::new(Code::ParameterNotImplemented, "Unsupported AUTH mechanism; use AUTH TLS.")),
        },
        // TLS has no protection buffer: any size is answered with PBSZ=0 (RFC 4217 §8).
        "PBSZ" => match text().map(|t| t.trim().parse::<u32>()) {
            Some(Ok(_)) => Ok(Pbsz),
            _ => Err(syntax("PBSZ needs a decimal size: PBSZ 0.")),
        },
        "PROT" => match text().map(|t| t.trim().to_ascii_uppercase()).as_deref() {
            Some("C") => Ok(Prot(Protection::Clear)),
            Some("P") => Ok(Prot(Protection::Private)),
            Some("S" | "E") => Err(Reply::new(Code::ProtLevelNotSupported, "PROT S and E are not supported; use P.")),
            Some(_) => Err(Reply::new(Code::ParameterNotImplemented, "Unknown PROT level; use C or P.")),
            None => Err(syntax("PROT needs a level: C or P.")),
        },
        "CCC" => none(Ccc),
        "" => Err(Reply::new(Code::SyntaxError, "Empty command.")),
        _ => Err(Reply::new(Code::NotImplemented, "Command not implemented.")),
    }
}

/// `MFMT 20240102030405 path`: the time is UTC (RFC draft-somers-ftp-mfxx).
fn parse_mfmt(arg: Vec<u8>) -> Result<Command, Reply> {
    let bad = || syntax("Expected MFMT YYYYMMDDHHMMSS path.");
    let space = arg.iter().position(|&b| b == b' ').ok_or_else(bad)?;
    let stamp = std::str::from_utf8(&arg[..space]).map_err(|_| bad())?;
    let time = listing::parse_mdtm(stamp).ok_or_else(bad)?;
    let path = arg[space + 1..].to_vec();
    if path.is_empty() {
        return Err(bad());
    }
    Ok(Command::Mfmt(time, path))
}

fn syntax(text: &str) -> Reply {
    Reply::new(Code::ParameterSyntaxError, text)
}

fn parse_type(arg: Option<String>) -> Result<Command, Reply> {
    let arg = arg.ok_or_else(|| syntax("TYPE needs an argument."))?.to_ascii_uppercase();
    let words: Vec<&str> = arg.split_whitespace().collect();
    match words.as_slice() {
        // "A N" is ASCII non-print, the default format; "L 8" is an 8-bit byte, i.e. binary.
        ["A"] | ["A", "N"] => Ok(Command::Type(Repr::Ascii)),
        ["I"] | ["L", "8"] => Ok(Command::Type(Repr::Binary)),
        ["A" | "E", _] | ["E"] | ["L", _] => Err(Reply::new(Code::ParameterNotImplemented, "Type not supported.")),
        _ => Err(syntax("Unknown TYPE.")),
    }
}

fn parse_single_letter(arg: Option<String>, only: &str, cmd: Command) -> Result<Command, Reply> {
    match arg.map(|a| a.trim().to_ascii_uppercase()) {
        None => Err(syntax("This command needs an argument.")),
        Some(a) if a == only => Ok(cmd),
        Some(_) => Err(Reply::new(Code::ParameterNotImplemented, format!("Only {only} is supported."))),
    }
}

/// `LIST -la dir` → `dir`: words that start with `-` are `ls` flags that clients (ncftp, curl,
/// lftp) add; they are not paths, and rejecting them breaks those clients.
fn listing_path(arg: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut rest = arg?;
    while rest.first() == Some(&b'-') {
        match rest.iter().position(|&b| b == b' ') {
            Some(i) => rest = &rest[i + 1..],
            None => return None,
        }
        while rest.first() == Some(&b' ') {
            rest = &rest[1..];
        }
    }
    (!rest.is_empty()).then(|| rest.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Command::*;

    fn ok(line: &str) -> Command {
        parse(line.as_bytes()).unwrap_or_else(|r| panic!("{line:?} → {r:?}"))
    }

    fn code(line: &str) -> u16 {
        parse(line.as_bytes()).map(|c| panic!("{line:?} parsed as {c:?}")).unwrap_err().code as u16
    }

    #[test]
    fn verbs_are_case_insensitive_and_aliases_fold() {
        assert_eq!(ok("user alice"), User("alice".into()));
        assert_eq!(ok("XPWD"), Pwd);
        assert_eq!(ok("xcwd /a b"), Cwd(b"/a b".to_vec()));
        assert_eq!(ok("XCUP"), Cdup);
        assert_eq!(ok("XMKD new"), Mkd(b"new".to_vec()));
    }

    #[test]
    fn a_verb_that_is_not_text_is_unknown_not_empty() {
        assert_eq!(parse(b"\xff\xfe x").unwrap_err().code, Code::NotImplemented);
        assert_eq!(parse(b"").unwrap_err().code, Code::SyntaxError);
    }

    #[test]
    fn arguments_keep_inner_and_trailing_spaces() {
        assert_eq!(ok("RETR my file.txt "), Retr(b"my file.txt ".to_vec()));
    }

    #[test]
    fn listing_flags_are_not_paths() {
        assert_eq!(ok("LIST"), List(None));
        assert_eq!(ok("LIST -la"), List(None));
        assert_eq!(ok("LIST -l -a dir"), List(Some(b"dir".to_vec())));
        assert_eq!(ok("NLST -CF"), Nlst(None));
        assert_eq!(ok("NLST sub dir"), Nlst(Some(b"sub dir".to_vec())));
    }

    #[test]
    fn types_modes_structures() {
        assert_eq!(ok("TYPE A"), Type(Repr::Ascii));
        assert_eq!(ok("type a n"), Type(Repr::Ascii));
        assert_eq!(ok("TYPE I"), Type(Repr::Binary));
        assert_eq!(ok("TYPE L 8"), Type(Repr::Binary));
        assert_eq!(code("TYPE E"), 504);
        assert_eq!(code("TYPE X"), 501);
        assert_eq!(ok("MODE S"), Mode);
        assert_eq!(code("MODE B"), 504);
        assert_eq!(ok("STRU F"), Stru);
        assert_eq!(code("STRU R"), 504);
    }

    #[test]
    fn data_channel_commands() {
        assert_eq!(ok("PORT 127,0,0,1,4,1"), Port("127.0.0.1:1025".parse().unwrap()));
        assert_eq!(ok("EPRT |2|::1|2000|"), Port("[::1]:2000".parse().unwrap()));
        assert_eq!(ok("EPSV"), Epsv);
        assert_eq!(ok("EPSV 2"), Epsv);
        assert_eq!(ok("EPSV ALL"), EpsvAll);
        assert_eq!(code("EPSV 3"), 522);
        assert_eq!(code("PORT 1,2,3"), 501);
        assert_eq!(code("EPRT |9|x|1|"), 522);
    }

    #[test]
    fn bad_input_gets_clear_codes() {
        assert_eq!(code(""), 500);
        assert_eq!(code("FROB"), 502);
        assert_eq!(code("RETR"), 501);
        assert_eq!(code("CWD"), 501);
        assert_eq!(code("PWD extra"), 501);
        assert_eq!(code("\u{ff}\u{fe}"), 502);
    }

    #[test]
    fn rfc959_and_3659_extras() {
        assert_eq!(ok("REST 1024"), Rest(1024));
        assert_eq!(code("REST -1"), 501);
        assert_eq!(code("REST x"), 501);
        assert_eq!(ok("HELP retr"), Help(Some("RETR".into())));
        assert_eq!(ok("STAT"), Stat(None));
        assert_eq!(ok("STAT -la /d"), Stat(Some(b"/d".to_vec())));
        assert_eq!(ok("STOU"), Stou(None));
        assert_eq!(ok("MLSD"), Mlsd(None));
        assert_eq!(ok("MLST a b"), Mlst(Some(b"a b".to_vec())));
        assert_eq!(code("ABOR now"), 501);
        assert_eq!(code("SMNT /x"), 502);
        let Mfmt(time, path) = ok("MFMT 20010909014640 a file") else { panic!() };
        assert_eq!(time, std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000));
        assert_eq!(path, b"a file");
        assert_eq!(code("MFMT 2001 x"), 501);
        assert_eq!(code("MFMT 20010909014640"), 501);
    }

    #[test]
    fn every_listed_verb_parses() {
        for (verb, _) in VERBS {
            if let Err(reply) = parse(format!("{verb} x").as_bytes()).and_then(|_| parse(verb.as_bytes())) {
                assert_ne!(reply.code, Code::NotImplemented, "{verb} is listed in HELP but not parsed");
            }
        }
    }

    #[test]
    fn password_is_hidden_in_logs() {
        assert_eq!(loggable(b"pass hunter2"), "PASS ****");
        assert_eq!(loggable(b"RETR a b"), "RETR a b");
        assert_eq!(ok("PASS"), Pass(String::new()));
    }
}
