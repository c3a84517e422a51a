//! Request/reply over one muxed inbox (SPEC §7.4), and flush waiters (SPEC §7.5).
//!
//! Each connection subscribes once to `_INBOX.<token>.*`, `<token>` being 22 base62 characters
//! from the operating system's secure random source. A request's reply subject is
//! `_INBOX.<token>.<n>` with `n` from a counter; the engine parses `n` from a delivered reply and
//! completes that request's waiter directly — replies never pass through the dispatch queue, so a
//! request blocked inside a callback, or in queue mode with nobody draining the queue, still
//! gets its reply.
//!
//! Every waiter is a [`Completer`]: the same one-shot answer serves a blocking caller and an
//! async task (see [`crate::completion`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use mm_wire::DecodeError;
use rand::RngCore;
use rand::rngs::OsRng;

use crate::completion::{self, Completer, Completion};
use crate::error::InvalidUtf8;
use crate::received::Received;

/// Length of the random inbox token: 22 base62 characters carry more than 128 bits.
pub(crate) const INBOX_TOKEN_LEN: usize = 22;

/// The subscription id of the connection's inbox subscription. Ids of application subscriptions
/// start after it.
pub(crate) const INBOX_SUBSCRIPTION_ID: u32 = 1;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` base62 characters from the operating system's secure random source. Bytes of 248 and
/// above are rejected so that every character is equally likely (248 = 4 × 62).
pub(crate) fn secure_token(len: usize) -> Result<String, rand::Error> {
    let mut token = String::with_capacity(len);
    let mut bytes = [0u8; 64];
    while token.len() < len {
        OsRng.try_fill_bytes(&mut bytes)?;
        for byte in bytes {
            if token.len() == len {
                break;
            }
            if byte < 248 {
                token.push(char::from(BASE62[usize::from(byte % 62)]));
            }
        }
    }
    Ok(token)
}

/// How a request (or flush) ended, as decided by the engine.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The reply (or, for an MM/1 flush, our own message back).
    Reply(Received),
    /// The gateway's PONG (MM/2 flush).
    Pong,
    /// NO_RESPONDERS.
    NoResponders,
    /// The reply's body did not decode.
    Undecodable(DecodeError),
    /// The reply's reply subject is not UTF-8.
    InvalidUtf8(InvalidUtf8),
    /// The connection was lost.
    Disconnected,
    /// The connection was closed.
    Closed,
}

/// The inbox's subjects.
#[derive(Debug)]
struct InboxNames {
    /// `_INBOX.<token>.`: reply subjects are this plus a number.
    prefix: String,
    /// What inboxes made by `create_inbox` start with (a number follows), chosen so that the
    /// muxed subscription (`prefix` + `*`) never matches them: `_INBOX.<token>_`, or under a
    /// prefix the gateway assigned, `<prefix>._.`.
    created: String,
}

/// The connection's inbox and its waiters.
pub(crate) struct Requests {
    /// The inbox's subjects: the library's own random token, or the prefix the gateway
    /// assigned to the session (security on, docs/security.md).
    names: RwLock<Arc<InboxNames>>,
    /// The library's own names, used when the gateway assigns none.
    own: Arc<InboxNames>,
    /// Numbers for reply subjects, flush PINGs and created inboxes.
    next: AtomicU64,
    /// Requests (and MM/1 flushes) waiting for a message on their reply subject.
    replies: Mutex<HashMap<u64, Completer<Outcome>>>,
    /// MM/2 flushes waiting for their PONG.
    pongs: Mutex<HashMap<u64, Completer<Outcome>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Requests {
    /// A new inbox with a fresh secure random token.
    pub(crate) fn new() -> Result<Requests, rand::Error> {
        let token = secure_token(INBOX_TOKEN_LEN)?;
        let own = Arc::new(InboxNames {
            prefix: format!("_INBOX.{token}."),
            created: format!("_INBOX.{token}_"),
        });
        Ok(Requests {
            names: RwLock::new(own.clone()),
            own,
            next: AtomicU64::new(1),
            replies: Mutex::new(HashMap::new()),
            pongs: Mutex::new(HashMap::new()),
        })
    }

    fn names(&self) -> Arc<InboxNames> {
        self.names
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Uses the inbox prefix the gateway assigned to a new session (`None`: the library's own).
    pub(crate) fn set_assigned_prefix(&self, assigned: Option<&str>) {
        let names = match assigned {
            Some(prefix) => Arc::new(InboxNames {
                prefix: format!("{prefix}."),
                created: format!("{prefix}._."),
            }),
            None => self.own.clone(),
        };
        *self.names.write().unwrap_or_else(PoisonError::into_inner) = names;
    }

    /// The muxed inbox pattern, `_INBOX.<token>.*`.
    pub(crate) fn pattern(&self) -> String {
        format!("{}*", self.names().prefix)
    }

    /// A fresh number.
    pub(crate) fn next_number(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// A unique inbox subject for the application's own subscriptions.
    pub(crate) fn create_inbox(&self) -> String {
        format!("{}{}", self.names().created, self.next_number())
    }

    /// Registers a reply waiter; returns its reply subject's number, the subject, and the
    /// completion to wait on.
    pub(crate) fn register_reply(&self) -> (u64, String, Completion<Outcome>) {
        let number = self.next_number();
        let (completer, completion) = completion::channel();
        lock(&self.replies).insert(number, completer);
        (
            number,
            format!("{}{number}", self.names().prefix),
            completion,
        )
    }

    /// Forgets a reply waiter (answered, timed out, or its request could not be sent).
    pub(crate) fn cancel_reply(&self, number: u64) {
        let completer = lock(&self.replies).remove(&number);
        // Dropped outside the lock.
        drop(completer);
    }

    /// Registers a PONG waiter under a fresh number; returns the number and the completion.
    pub(crate) fn register_pong(&self) -> (u64, Completion<Outcome>) {
        let number = self.next_number();
        let (completer, completion) = completion::channel();
        lock(&self.pongs).insert(number, completer);
        (number, completion)
    }

    /// Forgets a PONG waiter.
    pub(crate) fn cancel_pong(&self, number: u64) {
        let completer = lock(&self.pongs).remove(&number);
        drop(completer);
    }

    /// The number in a reply subject of this inbox, if it is one.
    pub(crate) fn reply_number(&self, subject: &[u8]) -> Option<u64> {
        let names = self.names();
        let rest = subject.strip_prefix(names.prefix.as_bytes())?;
        std::str::from_utf8(rest).ok()?.parse().ok()
    }

    /// Engine side: completes the waiter of reply number `number`. Returns false if nobody waits
    /// (a late reply after a timeout).
    pub(crate) fn complete_reply(&self, number: u64, outcome: Outcome) -> bool {
        let completer = lock(&self.replies).remove(&number);
        match completer {
            Some(completer) => {
                completer.complete(outcome);
                true
            }
            None => false,
        }
    }

    /// Engine side: completes the flush waiting for PONG number `number`.
    pub(crate) fn complete_pong(&self, number: u64) {
        let completer = lock(&self.pongs).remove(&number);
        if let Some(completer) = completer {
            completer.complete(Outcome::Pong);
        }
    }

    /// Fails every waiter (the connection was lost or closed).
    pub(crate) fn fail_all(&self, outcome: fn() -> Outcome) {
        let replies: Vec<_> = lock(&self.replies).drain().map(|(_, c)| c).collect();
        let pongs: Vec<_> = lock(&self.pongs).drain().map(|(_, c)| c).collect();
        for completer in replies.into_iter().chain(pongs) {
            completer.complete(outcome());
        }
    }

    /// Requests and flushes in flight.
    pub(crate) fn in_flight(&self) -> usize {
        lock(&self.replies).len() + lock(&self.pongs).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_base62_and_differ() {
        let first = secure_token(INBOX_TOKEN_LEN).unwrap();
        let second = secure_token(INBOX_TOKEN_LEN).unwrap();
        assert_eq!(first.len(), 22);
        assert!(first.bytes().all(|byte| byte.is_ascii_alphanumeric()));
        assert_ne!(first, second);
    }

    #[test]
    fn reply_subjects_round_trip_and_created_inboxes_do_not_match() {
        let requests = Requests::new().unwrap();
        let (number, subject, _completion) = requests.register_reply();
        assert_eq!(requests.reply_number(subject.as_bytes()), Some(number));
        let pattern = requests.pattern();
        assert!(mm_wire::subject::matches(&pattern, &subject));
        let inbox = requests.create_inbox();
        mm_wire::subject::validate_subject(&inbox).unwrap();
        assert!(!mm_wire::subject::matches(&pattern, &inbox));
        assert_eq!(requests.reply_number(inbox.as_bytes()), None);
        assert_eq!(requests.reply_number(b"_INBOX.other.1"), None);
    }
}
