//! `mioftpd check-config FILE`: loads a configuration file as the server would, checks what the
//! server checks at start (the root, the users file) and what each login would (the user's
//! home), and describes the effective settings. Never shows a password hash. Binds nothing.

use crate::auth::Users;
use crate::config_file;
use crate::fs::Root;
use crate::privileges;
use crate::tls::Tls;
use std::path::Path;

/// The report for a valid file (itself valid TOML: settings, then comments), or what is wrong.
pub fn check(path: &Path) -> Result<String, String> {
    let (config, matches) = config_file::load(path)?;
    let root = Root::new(&config.root).map_err(|e| format!("cannot serve {}: {e}", config.root.display()))?;
    let users = match &config.users {
        Some(users) => Users::load(users).map_err(|e| e.to_string())?,
        None => Users::default(),
    };
    let tls = Tls::from_config(&config).map_err(|e| e.to_string())?;
    if let Some(user) = &config.run_as {
        privileges::account_exists(user).map_err(|e| format!("run_as: {e}"))?;
    }
    let mut report = format!("# {}: valid; effective settings:\n", path.display());
    report.push_str(&config_file::effective_settings(&matches));
    report.push_str(&format!("# root: {}\n", root.dir().display()));
    let anonymous = if config.anonymous_allowed() { "allowed, read-only" } else { "off" };
    report.push_str(&format!("# anonymous logins: {anonymous}\n"));
    if tls.is_some() {
        let mode = if config.require_tls { "required" } else { "offered (AUTH TLS)" };
        let implicit = config.implicit_tls.map(|a| format!(", implicit on {a}")).unwrap_or_default();
        report.push_str(&format!("# TLS: {mode}{implicit}; certificate and key load and match\n"));
    }
    if let Some(file) = &config.users {
        report.push_str(&format!("# users file {}: {} users\n", file.display(), users.len()));
    }
    let mut problems = Vec::new();
    for account in users.accounts() {
        let access = if account.writable { "read-write" } else { "read-only" };
        let home = match &account.home {
            None => String::new(),
            Some(home) => match root.home(home) {
                Ok(home) => format!(", home {}", home.dir().display()),
                Err(e) => {
                    problems.push(format!("user {}: home {}: {e}", account.name, home.display()));
                    continue;
                }
            },
        };
        let rate = account.max_rate.map(|rate| format!(", at most {rate} bytes/s")).unwrap_or_default();
        report.push_str(&format!("#   {}: {access}{home}{rate}\n", account.name));
    }
    if problems.is_empty() { Ok(report) } else { Err(problems.join("\n")) }
}
