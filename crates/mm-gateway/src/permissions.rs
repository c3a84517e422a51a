//! What a connection may do: publish and subscribe permissions as subject patterns, per-user
//! limits, and private replies (docs/security.md).
//!
//! * [`Grant`]: a user's (or anonymous clients') permissions and limits, compiled from the
//!   configuration and shared by every connection of that user.
//! * [`Access`]: one connection's view — its grant, the inbox prefix the gateway assigned it, a
//!   cache of publish decisions (each distinct subject is checked once), and the reply subjects
//!   it may answer.
//!
//! **Rules.** A subject may be published to when an allow pattern matches it (no allow list:
//! every subject) and no deny pattern does. A subscription pattern is allowed when every subject
//! it can match is allowed: it lies inside an allow pattern and meets no deny pattern — so `>`
//! with `Secret.>` denied is refused, and the check is done once, at SUBSCRIBE, never per
//! message.
//!
//! **Reserved areas.** `_INBOX.` and `_MM.` are reachable only through allow patterns that name
//! them (first token `_INBOX` or `_MM`): `>` alone does not reach them. Instead, each connection
//! owns the inbox prefix the gateway assigned it, `_INBOX.<random>`, and may subscribe under it;
//! it may publish to another inbox only to answer a request it received (a message delivered to
//! it with that reply subject), at most `Responses.MaxMessages` times within
//! `Responses.ExpiresMs`. A request's reply subject must be the publisher's own inbox or a subject
//! it may publish to, so a response permission never reaches beyond what the requester could do.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::config::security::{GrantConfig, PatternRules};

/// The reply-inbox area.
const INBOX: &[u8] = b"_INBOX";

/// The gateway's area.
const GATEWAY: &[u8] = b"_MM";

/// Publish decisions a connection caches before the cache starts over.
const PUBLISH_CACHE_ENTRIES: usize = 4096;

/// Reply subjects a connection may answer at once; past it the oldest are forgotten.
const MAX_RESPONSE_GRANTS: usize = 16_384;

/// Random characters in an assigned inbox prefix (base62: about 131 bits).
const INBOX_TOKEN_CHARS: usize = 22;

/// Compiled allow and deny lists.
#[derive(Debug, Clone, Default)]
struct Rules {
    /// `None`: everything not denied.
    allow: Option<Vec<Vec<u8>>>,
    deny: Vec<Vec<u8>>,
}

impl Rules {
    fn compile(rules: &PatternRules) -> Rules {
        Rules {
            allow: rules
                .allow
                .as_ref()
                .map(|list| list.iter().map(|p| p.as_bytes().to_vec()).collect()),
            deny: rules.deny.iter().map(|p| p.as_bytes().to_vec()).collect(),
        }
    }

    /// Whether an allow pattern names the area `area` (its first token is `area`).
    fn names_area(&self, area: &[u8]) -> bool {
        self.allow.as_ref().is_some_and(|allow| {
            allow
                .iter()
                .any(|pattern| pattern.split(|&b| b == b'.').next() == Some(area))
        })
    }

    /// Whether every subject `pattern` matches is allowed (for a literal subject: whether it is).
    fn allows(&self, pattern: &[u8]) -> bool {
        let inside_allowed = match &self.allow {
            None => true,
            Some(allow) => allow.iter().any(|allowed| contains(allowed, pattern)),
        };
        inside_allowed && !self.deny.iter().any(|denied| overlaps(denied, pattern))
    }

    /// Applies the reserved-area rule, then [`Rules::allows`].
    fn allows_outside_own_inbox(&self, pattern: &[u8]) -> bool {
        for area in [INBOX, GATEWAY] {
            if overlaps(&area_pattern(area), pattern) && !self.names_area(area) {
                return false;
            }
        }
        self.allows(pattern)
    }
}

/// `<area>.>`.
fn area_pattern(area: &[u8]) -> Vec<u8> {
    let mut pattern = area.to_vec();
    pattern.extend_from_slice(b".>");
    pattern
}

fn tokens(pattern: &[u8]) -> Vec<&[u8]> {
    pattern.split(|&b| b == b'.').collect()
}

/// Whether every subject matched by `inner` is matched by `outer` (both valid patterns; a
/// literal subject is a pattern too).
pub(crate) fn contains(outer: &[u8], inner: &[u8]) -> bool {
    let outer = tokens(outer);
    let inner = tokens(inner);
    for (index, token) in outer.iter().enumerate() {
        match *token {
            b">" => return inner.len() > index,
            b"*" => match inner.get(index) {
                Some(&b">") | None => return false,
                Some(_) => {}
            },
            literal => match inner.get(index) {
                Some(other) if *other == literal => {}
                _ => return false,
            },
        }
    }
    inner.len() == outer.len()
}

/// Whether some subject is matched by both patterns.
pub(crate) fn overlaps(a: &[u8], b: &[u8]) -> bool {
    let a = tokens(a);
    let b = tokens(b);
    let mut index = 0;
    loop {
        match (a.get(index), b.get(index)) {
            (None, None) => return true,
            (Some(&b">"), Some(_)) | (Some(_), Some(&b">")) => return true,
            (Some(x), Some(y)) => {
                if *x != b"*" && *y != b"*" && x != y {
                    return false;
                }
            }
            _ => return false,
        }
        index += 1;
    }
}

/// A user's (or anonymous clients') permissions and limits.
#[derive(Debug)]
pub(crate) struct Grant {
    /// The user's name; `None` for anonymous access.
    pub(crate) user: Option<String>,
    publish: Rules,
    subscribe: Rules,
    /// Connections at once, per service and gateway.
    pub(crate) max_connections: Option<usize>,
    /// Subscriptions per connection.
    pub(crate) max_subscriptions: Option<usize>,
    /// Largest frame the connection may send.
    pub(crate) max_frame: Option<u32>,
    /// Replies per request received.
    response_max_messages: u32,
    /// How long a request may be answered.
    response_expiry: Duration,
}

impl Grant {
    /// Compiles a configured grant.
    pub(crate) fn new(user: Option<String>, config: &GrantConfig) -> Grant {
        Grant {
            user,
            publish: Rules::compile(&config.publish),
            subscribe: Rules::compile(&config.subscribe),
            max_connections: config.max_connections,
            max_subscriptions: config.max_subscriptions,
            max_frame: config.max_frame,
            response_max_messages: config.response_max_messages,
            response_expiry: config.response_expiry,
        }
    }

    /// The user's name for logs (`anonymous` without one).
    pub(crate) fn who(&self) -> &str {
        self.user.as_deref().unwrap_or("anonymous")
    }

    /// Whether the rules let it publish to `subject` (own inbox and responses aside).
    pub(crate) fn may_publish(&self, subject: &[u8]) -> bool {
        self.publish.allows_outside_own_inbox(subject)
    }

    /// Whether the rules let it subscribe to `pattern` (own inbox aside).
    pub(crate) fn may_subscribe(&self, pattern: &[u8]) -> bool {
        self.subscribe.allows_outside_own_inbox(pattern)
    }
}

/// How a publish was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PublishVerdict {
    /// By the rules or the own inbox: the same subject is allowed again.
    Allowed,
    /// As the answer to a request received: counted, may not be allowed again.
    Response,
    /// Refused.
    Denied,
}

/// A reply subject the connection may answer.
#[derive(Debug)]
struct ResponseGrant {
    remaining: u32,
    expires: Instant,
}

/// One connection's permissions, with its caches.
#[derive(Debug)]
pub(crate) struct Access {
    /// The user's grant.
    pub(crate) grant: std::sync::Arc<Grant>,
    /// `_INBOX.<random>`, assigned by the gateway (MM/2 clients).
    inbox_prefix: Option<Vec<u8>>,
    /// Publish decisions by the rules, per subject.
    publish_cache: hashbrown::HashMap<Box<[u8]>, bool, foldhash::fast::RandomState>,
    /// Reply subjects it may answer.
    responses: HashMap<Box<[u8]>, ResponseGrant>,
    /// Their order of arrival, for expiry and the bound.
    response_order: VecDeque<(Box<[u8]>, Instant)>,
}

impl Access {
    /// A connection's access; `assign_inbox` gives it an inbox prefix of its own.
    pub(crate) fn new(grant: std::sync::Arc<Grant>, assign_inbox: bool) -> Access {
        Access {
            grant,
            inbox_prefix: assign_inbox.then(new_inbox_prefix),
            publish_cache: Default::default(),
            responses: HashMap::new(),
            response_order: VecDeque::new(),
        }
    }

    /// The inbox prefix assigned to the connection.
    pub(crate) fn inbox_prefix(&self) -> Option<&str> {
        self.inbox_prefix
            .as_deref()
            .and_then(|prefix| std::str::from_utf8(prefix).ok())
    }

    /// Whether `subject` (or pattern) is under the connection's own inbox prefix.
    fn in_own_inbox(&self, subject: &[u8]) -> bool {
        self.inbox_prefix.as_deref().is_some_and(|prefix| {
            subject.len() > prefix.len() + 1
                && subject.starts_with(prefix)
                && subject[prefix.len()] == b'.'
        })
    }

    /// Whether the rules (or the own inbox) allow publishing to `subject`; cached per subject.
    fn publish_by_rules(&mut self, subject: &[u8]) -> bool {
        if let Some(&allowed) = self.publish_cache.get(subject) {
            return allowed;
        }
        let allowed = self.in_own_inbox(subject) || self.grant.may_publish(subject);
        if self.publish_cache.len() >= PUBLISH_CACHE_ENTRIES {
            self.publish_cache.clear();
        }
        self.publish_cache.insert(subject.into(), allowed);
        allowed
    }

    /// Whether the connection may publish to `subject` now. A response uses up one of the
    /// answers its request allows.
    pub(crate) fn check_publish(
        &mut self,
        subject: &[u8],
        now: impl FnOnce() -> Instant,
    ) -> PublishVerdict {
        if self.publish_by_rules(subject) {
            return PublishVerdict::Allowed;
        }
        match self.responses.get_mut(subject) {
            Some(grant) if grant.expires > now() => {
                grant.remaining -= 1;
                if grant.remaining == 0 {
                    self.responses.remove(subject);
                }
                PublishVerdict::Response
            }
            Some(_) => {
                self.responses.remove(subject);
                PublishVerdict::Denied
            }
            None => PublishVerdict::Denied,
        }
    }

    /// Whether `reply_subject` may be the reply subject of a publish: the own inbox, or a
    /// subject the connection may publish to by the rules.
    pub(crate) fn check_reply_subject(&mut self, reply_subject: &[u8]) -> bool {
        self.in_own_inbox(reply_subject) || self.publish_by_rules(reply_subject)
    }

    /// Whether the connection may subscribe to `pattern` (checked once, at SUBSCRIBE).
    pub(crate) fn check_subscribe(&self, pattern: &[u8]) -> bool {
        self.in_own_inbox(pattern) || self.grant.may_subscribe(pattern)
    }

    /// A message with reply subject `reply_subject` was delivered to the connection: it may
    /// answer it.
    pub(crate) fn record_request(&mut self, reply_subject: &[u8], now: Instant) {
        let expires = now + self.grant.response_expiry;
        match self.responses.get_mut(reply_subject) {
            Some(grant) => {
                grant.remaining = grant
                    .remaining
                    .saturating_add(self.grant.response_max_messages);
                grant.expires = expires;
            }
            None => {
                self.responses.insert(
                    reply_subject.into(),
                    ResponseGrant {
                        remaining: self.grant.response_max_messages,
                        expires,
                    },
                );
            }
        }
        self.response_order
            .push_back((reply_subject.into(), expires));
        while let Some((subject, expiry)) = self.response_order.front() {
            let over = self.response_order.len() > MAX_RESPONSE_GRANTS;
            if !over && *expiry > now {
                break;
            }
            if self
                .responses
                .get(subject)
                .is_some_and(|grant| grant.expires <= *expiry)
            {
                self.responses.remove(subject);
            }
            self.response_order.pop_front();
        }
    }

    /// Reply subjects it may answer now (for tests and stats).
    #[cfg(test)]
    pub(crate) fn responses(&self) -> usize {
        self.responses.len()
    }
}

/// `_INBOX.` and 22 base62 characters from the operating system's secure random source.
fn new_inbox_prefix() -> Vec<u8> {
    use rand::Rng;
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut random = rand::rngs::OsRng;
    let mut prefix = b"_INBOX.".to_vec();
    prefix.extend((0..INBOX_TOKEN_CHARS).map(|_| BASE62[random.gen_range(0..BASE62.len())]));
    prefix
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn rules(allow: Option<&[&str]>, deny: &[&str]) -> PatternRules {
        PatternRules {
            allow: allow.map(|list| list.iter().map(|s| s.to_string()).collect()),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn grant(publish: PatternRules, subscribe: PatternRules) -> Arc<Grant> {
        let mut config = GrantConfig {
            publish,
            subscribe,
            response_max_messages: 1,
            response_expiry: Duration::from_secs(60),
            ..GrantConfig::default()
        };
        config.max_subscriptions = None;
        Arc::new(Grant::new(Some("u".into()), &config))
    }

    #[test]
    fn containment() {
        for (outer, inner, expected) in [
            (">", "A", true),
            (">", "A.>", true),
            ("A.>", "A", false),
            ("A.>", "A.B.C", true),
            ("A.>", "A.*", true),
            ("A.>", "A.>", true),
            ("A.*", "A.B", true),
            ("A.*", "A.*", true),
            ("A.*", "A.>", false),
            ("A.*", "A.B.C", false),
            ("A.B", "A.*", false),
            ("A.B", "A.B", true),
            ("*.B", "A.B", true),
            ("*", ">", false),
        ] {
            assert_eq!(
                contains(outer.as_bytes(), inner.as_bytes()),
                expected,
                "{outer} ⊇ {inner}"
            );
        }
    }

    #[test]
    fn overlap() {
        for (a, b, expected) in [
            (">", "A", true),
            ("A.>", "A", false),
            ("A.>", "*.B", true),
            ("A.*", "B.*", false),
            ("A.*.C", "A.B.*", true),
            ("A.B", "A.B.C", false),
            ("_INBOX.>", ">", true),
            ("_INBOX.>", "*.x", true),
            ("_INBOX.>", "Orders.>", false),
        ] {
            assert_eq!(overlaps(a.as_bytes(), b.as_bytes()), expected, "{a} ∩ {b}");
            assert_eq!(overlaps(b.as_bytes(), a.as_bytes()), expected, "{b} ∩ {a}");
        }
    }

    #[test]
    fn allow_and_deny_for_publish_and_subscribe() {
        let grant = grant(
            rules(Some(&["Orders.>"]), &["Orders.Secret.>"]),
            rules(Some(&[">"]), &["Secret.>"]),
        );
        assert!(grant.may_publish(b"Orders.New"));
        assert!(!grant.may_publish(b"Orders.Secret.X"));
        assert!(!grant.may_publish(b"Prices.X"));
        assert!(grant.may_subscribe(b"Orders.*"));
        assert!(grant.may_subscribe(b"Prices.>"));
        // Could match a denied subject: refused once, at SUBSCRIBE.
        assert!(!grant.may_subscribe(b"*.X"));
        // `>` does not reach the reserved areas.
        assert!(!grant.may_subscribe(b">"));
        assert!(!grant.may_subscribe(b"_INBOX.abc.*"));
        assert!(!grant.may_publish(b"_MM.STATS"));
    }

    #[test]
    fn reserved_areas_need_patterns_that_name_them() {
        let grant = grant(
            rules(Some(&[">", "_MM.STATS"]), &[]),
            rules(Some(&[">", "_INBOX.>"]), &[]),
        );
        assert!(grant.may_publish(b"_MM.STATS"));
        assert!(!grant.may_publish(b"_INBOX.x.1"));
        // `>` also reaches `_MM.`, which these rules do not name.
        assert!(!grant.may_subscribe(b">"));
        assert!(grant.may_subscribe(b"_INBOX.x.*"));
        let everything = super::tests::grant(
            rules(None, &[]),
            rules(Some(&[">", "_INBOX.>", "_MM.>"]), &[]),
        );
        assert!(everything.may_subscribe(b">"));
    }

    #[test]
    fn own_inbox_and_responses() {
        let grant = grant(rules(Some(&["Service.>"]), &[]), rules(None, &[]));
        let mut requester = Access::new(grant.clone(), true);
        let mut responder = Access::new(grant, true);
        let prefix = requester.inbox_prefix().unwrap().to_owned();
        assert_eq!(prefix.len(), "_INBOX.".len() + INBOX_TOKEN_CHARS);
        let own = format!("{prefix}.*");
        assert!(requester.check_subscribe(own.as_bytes()));
        assert!(!responder.check_subscribe(own.as_bytes()));
        assert!(!requester.check_subscribe(b"_INBOX.>"));
        let reply = format!("{prefix}.1");
        assert!(requester.check_reply_subject(reply.as_bytes()));
        assert!(!responder.check_reply_subject(reply.as_bytes()));
        assert!(!responder.check_reply_subject(b"_INBOX.other.1"));
        let now = Instant::now();
        assert_eq!(
            responder.check_publish(reply.as_bytes(), || now),
            PublishVerdict::Denied
        );
        responder.record_request(reply.as_bytes(), now);
        assert_eq!(
            responder.check_publish(reply.as_bytes(), || now),
            PublishVerdict::Response
        );
        // One answer per request by default.
        assert_eq!(
            responder.check_publish(reply.as_bytes(), || now),
            PublishVerdict::Denied
        );
        // Expired.
        responder.record_request(reply.as_bytes(), now);
        assert_eq!(
            responder.check_publish(reply.as_bytes(), || now + Duration::from_secs(61)),
            PublishVerdict::Denied
        );
        assert_eq!(responder.responses(), 0);
        assert_eq!(
            requester.check_publish(b"Service.Add", || now),
            PublishVerdict::Allowed
        );
    }

    #[test]
    fn response_grants_are_bounded() {
        let grant = grant(rules(None, &[]), rules(None, &[]));
        let mut access = Access::new(grant, true);
        let now = Instant::now();
        for i in 0..(MAX_RESPONSE_GRANTS + 100) {
            access.record_request(format!("_INBOX.x.{i}").as_bytes(), now);
        }
        assert!(access.responses() <= MAX_RESPONSE_GRANTS);
        assert_eq!(
            access.check_publish(b"_INBOX.x.0", || now),
            PublishVerdict::Denied
        );
        let last = format!("_INBOX.x.{}", MAX_RESPONSE_GRANTS + 99);
        assert_eq!(
            access.check_publish(last.as_bytes(), || now),
            PublishVerdict::Response
        );
    }
}
