//! `--config FILE`: settings in a TOML file, one key per command-line flag. A key is the flag's
//! long name, written with `_` or `-` (`max_sessions = 50` and `max-sessions = 50` both mean
//! `--max-sessions 50`); an on/off flag takes `true` or `false`.
//!
//! The file is turned into flag arguments and parsed by the very clap definition of `Config`,
//! so every flag has a key without a list to keep in step, a value means exactly what it means
//! on the command line (same parser, same checks), and a new field of `Config` needs nothing
//! here. Precedence: a flag given on the command line, then the file, then the default (the
//! file's key is left out when its flag was typed). Relative paths are relative to the working
//! directory, as they are on the command line. Unknown keys and bad values are errors that
//! name the file and the key.

use crate::config::{Cli, Config};
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, CommandFactory, FromArgMatches};
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Parses the command line (`std::env::args_os()`), merging in the file `--config` names.
pub fn parse_args(argv: impl IntoIterator<Item = OsString>) -> Result<Cli, clap::Error> {
    let argv: Vec<OsString> = argv.into_iter().collect();
    let matches = Cli::command().try_get_matches_from(&argv)?;
    let Some(path) = matches.get_one::<PathBuf>("config_file") else {
        return Cli::from_arg_matches(&matches);
    };
    let typed = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let from_file = file_args(path, typed).map_err(|e| clap::Error::raw(ErrorKind::InvalidValue, format!("{e}\n")))?;
    let matches = Cli::command().try_get_matches_from(argv.into_iter().chain(from_file))?;
    Cli::from_arg_matches(&matches)
}

/// The settings of the file at `path` alone (over the defaults), and the matches they came
/// from, for `effective_settings`.
pub fn load(path: &Path) -> Result<(Config, ArgMatches), String> {
    let args = file_args(path, |_| false)?;
    let invalid = |e: clap::Error| format!("{}: {}", path.display(), reason(&e));
    let matches = config_command().try_get_matches_from(args).map_err(invalid)?;
    let config = Config::from_arg_matches(&matches).map_err(invalid)?;
    Ok((config, matches))
}

/// Every setting in `matches` (from `load`) as a TOML line, defaults included, so the output
/// is itself a valid configuration file; options left unset are comments.
pub fn effective_settings(matches: &ArgMatches) -> String {
    let mut out = String::new();
    for arg in config_command().get_arguments() {
        let id = arg.get_id().as_str();
        let Some(raw) = matches.get_raw(id) else {
            out.push_str(&format!("# {id} = (not set)\n"));
            continue;
        };
        let mut values: Vec<toml::Value> = raw.map(|v| typed_value(&v.to_string_lossy())).collect();
        let value = if values.len() == 1 { values.remove(0) } else { toml::Value::Array(values) };
        out.push_str(&format!("{id} = {}\n", shown(id, value)));
    }
    out
}

/// No flag holds a secret today; should one ever be added, its value is never printed.
fn shown(id: &str, value: toml::Value) -> toml::Value {
    let secret = ["password", "secret", "passphrase"].iter().any(|word| id.contains(word));
    if secret { toml::Value::String("(hidden)".into()) } else { value }
}

/// A value from the command line as TOML would have written it: `300`, `true`, or `"text"`.
fn typed_value(text: &str) -> toml::Value {
    if let Ok(flag) = text.parse::<bool>() {
        toml::Value::Boolean(flag)
    } else if let Ok(number) = text.parse::<i64>() {
        toml::Value::Integer(number)
    } else {
        toml::Value::String(text.into())
    }
}

/// `Config`'s flags alone, without the binary name: what each key is checked against.
fn config_command() -> Command {
    Config::augment_args(Command::new("mioftpd")).no_binary_name(true)
}

/// The file at `path` as flag arguments, each key checked on its own so that an error names
/// it; keys whose flag `typed` says was given on the command line are checked but left out.
fn file_args(path: &Path, typed: impl Fn(&str) -> bool) -> Result<Vec<OsString>, String> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read config file {name}: {e}"))?;
    let table: toml::Table = text.parse().map_err(|e| format!("{name}: {e}"))?;
    let command = config_command();
    let mut seen: HashMap<String, &str> = HashMap::new();
    let mut args = Vec::new();
    for (key, value) in &table {
        let id = key.replace('-', "_");
        let Some(arg) = command.get_arguments().find(|arg| arg.get_id() == id.as_str() && arg.get_long().is_some())
        else {
            return Err(format!(
                "{name}: unknown key {key:?} (keys are the long names of the flags in `mioftpd --help`)"
            ));
        };
        if let Some(other) = seen.insert(id.clone(), key) {
            return Err(format!("{name}: key {key:?} given twice (also as {other:?})"));
        }
        let these = key_args(arg, value).map_err(|e| format!("{name}: key {key:?}: {e}"))?;
        command
            .clone()
            .try_get_matches_from(&these)
            .map_err(|e| format!("{name}: key {key:?}: invalid value {value}: {}", reason(&e)))?;
        if !typed(&id) {
            args.extend(these);
        }
    }
    Ok(args)
}

/// The flag arguments that say what `key = value` says.
fn key_args(arg: &Arg, value: &toml::Value) -> Result<Vec<OsString>, String> {
    let flag = format!("--{}", arg.get_long().unwrap_or_default());
    match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse => {
            let on = value.as_bool().ok_or_else(|| format!("expected true or false, not {value}"))?;
            let given = on == matches!(arg.get_action(), ArgAction::SetTrue);
            Ok(if given { vec![flag.into()] } else { Vec::new() })
        }
        ArgAction::Append => match value {
            toml::Value::Array(items) => items.iter().map(|item| value_arg(&flag, item)).collect(),
            single => Ok(vec![value_arg(&flag, single)?]),
        },
        action if action.takes_values() => Ok(vec![value_arg(&flag, value)?]),
        _ => Err("this flag has no key".into()),
    }
}

fn value_arg(flag: &str, value: &toml::Value) -> Result<OsString, String> {
    let text = match value {
        toml::Value::String(text) => text.clone(),
        toml::Value::Array(_) | toml::Value::Table(_) => return Err(format!("expected one value, not {value}")),
        scalar => scalar.to_string(),
    };
    // `--flag=value`, so that a value starting with `-` stays a value.
    Ok(format!("{flag}={text}").into())
}

/// What clap found wrong, without its usage and help lines.
fn reason(err: &clap::Error) -> String {
    match std::error::Error::source(err) {
        Some(source) => source.to_string(),
        None => {
            let text = err.to_string();
            let first = text.lines().next().unwrap_or_default();
            first.strip_prefix("error: ").unwrap_or(first).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct File(PathBuf);

    impl File {
        fn new(label: &str, text: &str) -> File {
            let path = std::env::temp_dir().join(format!("mioftpd-config-{label}-{}.toml", std::process::id()));
            std::fs::write(&path, text).unwrap();
            File(path)
        }

        fn arg(&self) -> OsString {
            self.0.clone().into()
        }
    }

    impl Drop for File {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn parse(args: &[&str], file: &File) -> Result<Cli, clap::Error> {
        let argv = ["mioftpd", "--config"].map(OsString::from).into_iter().chain([file.arg()]);
        parse_args(argv.chain(args.iter().map(OsString::from)))
    }

    #[test]
    fn the_command_line_wins_over_the_file_and_the_file_over_the_defaults() {
        let file = File::new(
            "precedence",
            "max_sessions = 7\nmax-per-ip = 3\npasv_ports = \"50000-50010\"\nanonymous = true\nroot = \"/srv\"\n",
        );
        let config = parse(&[], &file).unwrap().config;
        assert_eq!((config.max_sessions, config.max_per_ip), (7, 3));
        assert_eq!(config.pasv_ports, Some(50000..=50010));
        assert!(config.anonymous);
        assert_eq!(config.root, Path::new("/srv"));
        assert_eq!(config.idle_timeout, 300, "a default where the file says nothing");

        let config = parse(&["--max-sessions", "9", "--root", "/other"], &file).unwrap().config;
        assert_eq!((config.max_sessions, config.max_per_ip, config.root.to_str()), (9, 3, Some("/other")));
        // The command line's own default is not "given": the file still wins over it.
        let config = parse(&["--idle-timeout", "300"], &file).unwrap().config;
        assert_eq!((config.idle_timeout, config.max_sessions), (300, 7));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let error = |text: &str| parse(&[], &File::new("bad", text)).unwrap_err().to_string();
        let e = error("max_sesions = 5\n");
        assert!(e.contains("unknown key \"max_sesions\""), "{e}");
        let e = error("max_sessions = \"lots\"\n");
        assert!(e.contains("key \"max_sessions\": invalid value \"lots\": invalid digit"), "{e}");
        let e = error("max_sessions = -1\n");
        assert!(e.contains("key \"max_sessions\": invalid value -1"), "{e}");
        let e = error("pasv_ports = \"9-1\"\n");
        assert!(e.contains("key \"pasv_ports\": invalid value \"9-1\": expected 1 <= A <= B"), "{e}");
        let e = error("anonymous = \"yes\"\n");
        assert!(e.contains("key \"anonymous\": expected true or false"), "{e}");
        let e = error("listen = [\"a\", \"b\"]\n");
        assert!(e.contains("key \"listen\": expected one value"), "{e}");
        let e = error("max_sessions = 1\nmax-sessions = 2\n");
        assert!(e.contains("given twice"), "{e}");
        let e = error("max_sessions = \n");
        assert!(e.contains("line 1"), "a TOML syntax error says where: {e}");
        let e = error("config = \"other.toml\"\n");
        assert!(e.contains("unknown key \"config\""), "{e}");
        let missing = parse_args(["mioftpd", "--config", "/nonexistent.toml"].map(OsString::from)).unwrap_err();
        assert!(missing.to_string().contains("cannot read config file /nonexistent.toml"), "{missing}");
    }

    #[test]
    fn effective_settings_round_trip() {
        let file = File::new("effective", "max_sessions = 7\nanonymous = true\nlisten = \"127.0.0.1:21\"\n");
        let (config, matches) = load(&file.0).unwrap();
        assert_eq!(config.max_sessions, 7);
        let text = effective_settings(&matches);
        assert!(text.contains("max_sessions = 7\n") && text.contains("idle_timeout = 300\n"), "{text}");
        assert!(text.contains("anonymous = true\n") && text.contains("no_zero_copy = false\n"), "{text}");
        assert!(text.contains("listen = \"127.0.0.1:21\"\n") && text.contains("# pasv_ports = (not set)"), "{text}");
        let again = File::new("effective-again", &text);
        let (reloaded, _) = load(&again.0).unwrap();
        assert_eq!(format!("{reloaded:?}"), format!("{config:?}"), "the output is a config file meaning the same");
    }

    #[test]
    fn secret_looking_keys_are_hidden() {
        assert_eq!(shown("tls_key_password", toml::Value::from("x")).as_str(), Some("(hidden)"));
        assert_eq!(shown("tls_key", toml::Value::from("/etc/key.pem")).as_str(), Some("/etc/key.pem"));
    }
}
