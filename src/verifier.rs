//! The one thread besides the loop: checks passwords. A SHA-512-crypt hash takes about a
//! millisecond and bcrypt about a hundred, far too long to run on a loop that is moving other
//! clients' data, so `PASS` becomes a request here and the verdict comes back through a channel
//! and a `mio::Waker`.

use crate::auth::{Account, Users};
use log::error;
use mio::{Token, Waker};
use std::io;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};

pub struct Request {
    pub token: Token,
    pub session_id: u64,
    pub user: String,
    pub password: String,
}

pub struct Verdict {
    pub token: Token,
    /// With the token, identifies the session: a slot may have been reused since the request.
    pub session_id: u64,
    pub account: Option<Account>,
}

pub struct Verifier {
    requests: Option<Sender<Request>>,
    verdicts: Receiver<Verdict>,
    thread: Option<JoinHandle<()>>,
}

impl Verifier {
    pub fn spawn(users: Users, waker: Arc<Waker>) -> io::Result<Verifier> {
        let (requests, inbox) = mpsc::channel::<Request>();
        let (outbox, verdicts) = mpsc::channel();
        let thread = thread::Builder::new().name("mioftpd-verifier".into()).spawn(move || {
            for request in inbox {
                let account = users.verify(&request.user, &request.password);
                let verdict = Verdict { token: request.token, session_id: request.session_id, account };
                if outbox.send(verdict).is_err() {
                    return; // the loop is gone
                }
                if let Err(e) = waker.wake() {
                    error!("cannot wake the event loop: {e}");
                }
            }
        })?;
        Ok(Verifier { requests: Some(requests), verdicts, thread: Some(thread) })
    }

    pub fn submit(&self, request: Request) {
        if let Some(requests) = &self.requests {
            let _ = requests.send(request);
        }
    }

    /// Verdicts that have arrived, without waiting.
    pub fn verdicts(&self) -> mpsc::TryIter<'_, Verdict> {
        self.verdicts.try_iter()
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        self.requests = None; // ends the thread's loop
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
