//! `--workers N`: N copies of the loop, each on a thread of its own with its own `Poll`, slab,
//! timers and password checker. Their control listeners share one port (`SO_REUSEPORT`), and
//! the kernel hands each new connection to one of them; a session, its passive listeners and
//! its data connections then live and die on that worker. Between workers there is only the
//! configuration, the served tree and the session counts behind the limits
//! (`session_limits`). With one worker (the default) the loop runs on the calling thread,
//! exactly as a single `Server` does.

use crate::config::Config;
use crate::server::{Handle, Server};
use std::io;
use std::net::SocketAddr;
use std::thread;

pub struct Workers {
    servers: Vec<Server>,
}

impl Workers {
    /// Binds every worker's listener, drops privileges (`--run-as`), then builds the workers
    /// (see `Server::bind_workers`). No worker runs yet.
    pub fn bind(config: &Config) -> io::Result<Workers> {
        Ok(Workers { servers: Server::bind_workers(config, config.workers)? })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.servers.first().map(Server::local_addr)
    }

    /// The implicit FTPS port, shared by all workers like the control port.
    pub fn implicit_tls_addr(&self) -> Option<SocketAddr> {
        self.servers.first().and_then(Server::implicit_tls_addr)
    }

    /// Each worker's metrics endpoint, in order (empty without `--metrics`).
    pub fn metrics_addrs(&self) -> Vec<SocketAddr> {
        self.servers.iter().filter_map(Server::metrics_addr).collect()
    }

    /// One handle per worker, in order.
    pub fn handles(&self) -> Vec<Handle> {
        self.servers.iter().map(Server::handle).collect()
    }

    /// SIGTERM/SIGINT reach every worker: each registers its own handler, and each drains its
    /// own sessions (see `Server::handle_signals`).
    pub fn handle_signals(&mut self) -> io::Result<()> {
        self.servers.iter_mut().try_for_each(Server::handle_signals)
    }

    /// Runs every worker until all have stopped: the first on this thread, the others on
    /// threads of their own. A worker that fails or panics stops the others, and the first
    /// error is returned.
    pub fn run(self) -> io::Result<()> {
        let handles = self.handles();
        let mut servers = self.servers.into_iter();
        let Some(mut first) = servers.next() else { return Ok(()) };
        thread::scope(|scope| {
            let mut threads = Vec::new();
            for (index, mut server) in servers.enumerate() {
                let handles = &handles;
                let spawned = thread::Builder::new()
                    .name(format!("mioftpd-worker-{}", index + 2))
                    .spawn_scoped(scope, move || stop_all_on_failure(handles, || server.run()));
                match spawned {
                    Ok(thread) => threads.push(thread),
                    Err(e) => {
                        stop_all(handles);
                        return Err(e);
                    }
                }
            }
            let mut result = stop_all_on_failure(&handles, || first.run());
            for thread in threads {
                let outcome = thread.join().unwrap_or_else(|_| Err(io::Error::other("a worker panicked")));
                result = result.and(outcome);
            }
            result
        })
    }
}

/// Runs one worker; if it returns an error or panics, the other workers are stopped too, so
/// that the process ends instead of serving on with part of its capacity.
fn stop_all_on_failure(handles: &[Handle], run: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
    struct OnPanic<'a>(&'a [Handle]);
    impl Drop for OnPanic<'_> {
        fn drop(&mut self) {
            if thread::panicking() {
                stop_all(self.0);
            }
        }
    }
    let _on_panic = OnPanic(handles);
    let result = run();
    if result.is_err() {
        stop_all(handles);
    }
    result
}

fn stop_all(handles: &[Handle]) {
    handles.iter().for_each(Handle::stop);
}
