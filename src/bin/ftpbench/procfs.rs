//! What the server under test costs, read from Linux `/proc`: CPU time, resident memory (RSS and
//! PSS) and open descriptors, summed over the process and all its descendants, because forking
//! servers (vsftpd, pure-ftpd) run each session in a child.
//!
//! CPU time is utime+stime+cutime+cstime of every live process in the tree: a child that has
//! exited and been reaped is counted once, in its parent's cutime/cstime, and a live one once,
//! in its own utime/stime.

use std::collections::HashMap;
use std::fs;
use std::io;

pub struct Probe {
    pid: u32,
    ticks_per_second: f64,
}

/// One look at the server's process tree.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub cpu_seconds: f64,
    pub rss_kib: u64,
    /// `None` where the kernel has no `smaps_rollup` (before Linux 4.14).
    pub pss_kib: Option<u64>,
    pub fds: u64,
    pub processes: usize,
}

impl Probe {
    pub fn new(pid: u32) -> io::Result<Probe> {
        fs::metadata(format!("/proc/{pid}/stat"))
            .map_err(|e| io::Error::new(e.kind(), format!("server pid {pid}: /proc/{pid}/stat: {e}")))?;
        // SAFETY: sysconf has no preconditions; it only reads a system constant.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let ticks_per_second = if ticks > 0 { ticks as f64 } else { 100.0 };
        Ok(Probe { pid, ticks_per_second })
    }

    /// CPU seconds of the whole tree so far: cheap enough to take at the edges of a window.
    pub fn cpu_seconds(&self) -> io::Result<f64> {
        let mut ticks = 0;
        for pid in self.tree() {
            ticks += tolerate_exit(pid, self.pid, cpu_ticks(pid))?.unwrap_or(0);
        }
        Ok(ticks as f64 / self.ticks_per_second)
    }

    /// CPU, memory and descriptors of the whole tree.
    pub fn sample(&self) -> io::Result<Sample> {
        let pids = self.tree();
        let mut sample = Sample { cpu_seconds: 0.0, rss_kib: 0, pss_kib: Some(0), fds: 0, processes: 0 };
        let mut ticks = 0;
        for &pid in &pids {
            // A child may exit between listing and reading: it then simply no longer counts.
            let Some(cpu) = tolerate_exit(pid, self.pid, cpu_ticks(pid))? else { continue };
            let Some(rss) = tolerate_exit(pid, self.pid, status_kib(pid, "VmRSS:"))? else { continue };
            let Some(fds) = tolerate_exit(pid, self.pid, fd_count(pid))? else { continue };
            ticks += cpu;
            sample.rss_kib += rss;
            sample.fds += fds;
            sample.pss_kib = match (sample.pss_kib, pss_kib(pid)) {
                (Some(total), Some(pss)) => Some(total + pss),
                _ => None,
            };
            sample.processes += 1;
        }
        sample.cpu_seconds = ticks as f64 / self.ticks_per_second;
        Ok(sample)
    }

    /// The server and all its descendants, parents first.
    fn tree(&self) -> Vec<u32> {
        let mut pids = vec![self.pid];
        let mut next = 0;
        while next < pids.len() {
            let Some(children) = children(pids[next]) else { return tree_by_scan(self.pid) };
            pids.extend(children);
            next += 1;
        }
        pids
    }
}

/// The server itself vanishing is an error; a child vanishing (`Ok(None)`) is not.
fn tolerate_exit<T>(pid: u32, root: u32, result: io::Result<T>) -> io::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if pid != root && matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::InvalidInput) => Ok(None),
        // ESRCH: the process exited while its files were open.
        Err(e) if pid != root && e.raw_os_error() == Some(libc::ESRCH) => Ok(None),
        Err(e) => Err(io::Error::new(e.kind(), format!("server pid {pid}: {e}"))),
    }
}

/// Children of every thread of `pid` (`/proc/PID/task/TID/children`, Linux 3.5+ with
/// CONFIG_PROC_CHILDREN), or `None` where the kernel has no such file.
fn children(pid: u32) -> Option<Vec<u32>> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return Some(Vec::new()) };
    let mut found = Vec::new();
    for task in tasks.flatten() {
        match fs::read_to_string(task.path().join("children")) {
            Ok(text) => found.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            // The thread ended meanwhile: it has no children left to report.
            Err(_) => {}
        }
    }
    found.sort_unstable();
    found.dedup();
    Some(found)
}

/// The tree of `root` from one pass over every process's parent id. One pass, not one per
/// process of the tree: a forking server holding 10 000 sessions has 20 000 processes, and a
/// scan per process would read /proc hundreds of millions of times.
fn tree_by_scan(root: u32) -> Vec<u32> {
    let mut by_parent: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for pid in entries.flatten().filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok()) {
            let parent = fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| stat_fields(&s, 4));
            if let Some(parent) = parent.and_then(|p| u32::try_from(p).ok()) {
                by_parent.entry(parent).or_default().push(pid);
            }
        }
    }
    let mut pids = vec![root];
    let mut next = 0;
    while next < pids.len() {
        // Each pid has one parent, so no pid is reached twice.
        if let Some(children) = by_parent.remove(&pids[next]) {
            pids.extend(children);
        }
        next += 1;
    }
    pids
}

/// utime + stime + cutime + cstime, in clock ticks (fields 14–17 of `/proc/PID/stat`).
fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    (14..=17)
        .map(|field| stat_fields(&stat, field))
        .sum::<Option<u64>>()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("/proc/{pid}/stat: unexpected format")))
}

/// Field `n` (1-based, as in proc(5)) of a stat line. The command name (field 2) may contain
/// spaces and parentheses, so counting starts after its last `)`.
fn stat_fields(stat: &str, n: usize) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(n.checked_sub(3)?)?.parse().ok()
}

/// A `Name:   N kB` line of `/proc/PID/status`.
fn status_kib(pid: u32, key: &str) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    // Kernel threads and zombies have no VmRSS line: they hold no user memory.
    Ok(kib_line(&status, key).unwrap_or(0))
}

/// PSS shares each page among the processes mapping it, so forked servers are not counted
/// once per child for the same pages.
fn pss_kib(pid: u32) -> Option<u64> {
    let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    kib_line(&rollup, "Pss:")
}

fn kib_line(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
}

fn fd_count(pid: u32) -> io::Result<u64> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_tricky_name() {
        let stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0";
        assert_eq!(stat_fields(stat, 3), None, "state is not a number");
        assert_eq!(stat_fields(stat, 4), Some(1));
        assert_eq!((14..=17).map(|f| stat_fields(stat, f).unwrap()).sum::<u64>(), 13);
        assert_eq!(kib_line("Name:\tx\nVmRSS:\t  1234 kB\n", "VmRSS:"), Some(1234));
    }

    #[test]
    fn probes_this_process() {
        let probe = Probe::new(std::process::id()).unwrap();
        let sample = probe.sample().unwrap();
        assert!(sample.rss_kib > 0 && sample.fds > 0 && sample.processes >= 1, "{sample:?}");
        assert!(probe.cpu_seconds().unwrap() >= 0.0);
        assert!(Probe::new(u32::MAX).is_err());
    }

    #[test]
    fn finds_a_child_process_either_way() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let me = std::process::id();
        assert!(tree_by_scan(me).contains(&child.id()), "scan");
        if let Some(children) = children(me) {
            assert!(children.contains(&child.id()), "children files");
        }
        let tree = Probe::new(me).unwrap().tree();
        assert_eq!(tree[0], me);
        assert!(tree.contains(&child.id()), "{tree:?}");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
