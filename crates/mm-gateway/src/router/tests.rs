//! Routing in memory: connections with real (unused) sockets, frames read straight out of their
//! output buffers.

use std::time::Duration;

use mm_wire::handshake::Protocol;
use mm_wire::{Frame, Header, Message};

use super::*;
use crate::connection::{Connection, NewConnection, Role};
use crate::socket::ConnectionHandle;
use crate::test_io::{frame, run, socket_pair};

async fn connection(connections: &mut Connections, role: Role) -> ConnectionKey {
    let (gateway_end, _test_end) = socket_pair().await;
    let address = gateway_end.peer_addr().unwrap();
    let new = NewConnection {
        handle: ConnectionHandle::new(gateway_end, None),
        address,
        name: "test".into(),
        role,
        protocol: Protocol::Mm2,
        peer_heartbeat: Duration::ZERO,
        access: None,
        max_frame: mm_wire::DEFAULT_MAX_FRAME,
    };
    connections.insert(Connection::new(1, new, usize::MAX))
}

fn client() -> Role {
    Role::Client {
        no_responders: false,
    }
}

fn link() -> Role {
    Role::AcceptedLink { peer_id: None }
}

/// Every frame queued for `key`, as (subscription id, subject), in order; empties the queue.
fn queued(connections: &mut Connections, key: ConnectionKey) -> Vec<(u32, String)> {
    let bytes = connections[key].outbound.take();
    let mut frames = Vec::new();
    let mut rest = bytes::Bytes::from(bytes.to_vec());
    while !rest.is_empty() {
        let length = i32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        let frame = Frame::parse(rest.split_to(length)).unwrap();
        frames.push((
            frame.header().subscription_id,
            String::from_utf8_lossy(frame.header().subject).into_owned(),
        ));
    }
    frames
}

fn publish(subject: &str) -> Vec<u8> {
    frame(
        &Header::send_message(subject),
        &Message::new().add_i32("n", 1),
    )
}

fn subscriber(connection: ConnectionKey, subscription_id: u32) -> Subscriber {
    Subscriber {
        connection,
        subscription_id,
    }
}

#[test]
fn one_copy_per_matching_subscription_each_with_its_id() {
    run(async {
        let mut connections = Connections::with_key();
        let publisher = connection(&mut connections, client()).await;
        let receiver = connection(&mut connections, client()).await;
        let mut router = Router::new();
        router.subscribe(b"A.B", subscriber(receiver, 3));
        router.subscribe(b"A.*", subscriber(receiver, 4));
        router.subscribe(b"B", subscriber(receiver, 5));
        let outcome = router.route(
            Origin::Client(publisher),
            &publish("A.B"),
            b"A.B",
            &mut connections,
        );
        assert!(outcome.delivered && outcome.matched);
        assert_eq!(outcome.visited, 2);
        assert_eq!(outcome.dropped, 0);
        let mut frames = queued(&mut connections, receiver);
        frames.sort();
        assert_eq!(frames, vec![(3, "A.B".into()), (4, "A.B".into())]);
        assert!(router.flush.contains(receiver));
        assert!(!router.flush.contains(publisher));
    });
}

#[test]
fn a_link_gets_one_copy_however_many_of_its_patterns_match_and_nothing_from_peers() {
    run(async {
        let mut connections = Connections::with_key();
        let publisher = connection(&mut connections, client()).await;
        let peer = connection(&mut connections, link()).await;
        let other_peer = connection(&mut connections, link()).await;
        let local = connection(&mut connections, client()).await;
        let mut router = Router::new();
        router.subscribe(b"A.>", subscriber(peer, 1));
        router.subscribe(b"A.B", subscriber(peer, 2));
        router.subscribe(b"*.B", subscriber(peer, 3));
        router.subscribe(b"A.B", subscriber(other_peer, 1));
        router.subscribe(b"A.B", subscriber(local, 9));

        router.route(
            Origin::Client(publisher),
            &publish("A.B"),
            b"A.B",
            &mut connections,
        );
        assert_eq!(queued(&mut connections, peer), vec![(0, "A.B".into())]);
        assert_eq!(
            queued(&mut connections, other_peer),
            vec![(0, "A.B".into())]
        );
        assert_eq!(queued(&mut connections, local), vec![(9, "A.B".into())]);

        // From a peer: local clients only.
        let outcome = router.route(
            Origin::Peer(peer),
            &publish("A.B"),
            b"A.B",
            &mut connections,
        );
        assert!(outcome.delivered);
        assert!(queued(&mut connections, other_peer).is_empty());
        assert!(queued(&mut connections, peer).is_empty());
        assert_eq!(queued(&mut connections, local), vec![(9, "A.B".into())]);
    });
}

#[test]
fn the_memo_follows_changes_to_the_index() {
    run(async {
        let mut connections = Connections::with_key();
        let publisher = connection(&mut connections, client()).await;
        let receiver = connection(&mut connections, client()).await;
        let mut router = Router::new();
        // A publisher without a memo knows no subject — not even the empty one (issue #12).
        assert!(!router.knows_subject(publisher, b""));
        assert!(!router.knows_subject(publisher, b"X"));
        let frame = publish("X");
        let outcome = router.route(Origin::Client(publisher), &frame, b"X", &mut connections);
        assert_eq!(
            outcome,
            RouteOutcome {
                frame_len: frame.len(),
                ..RouteOutcome::default()
            }
        );
        assert!(router.knows_subject(publisher, b"X"));
        assert!(!router.knows_subject(publisher, b""));
        // A subscription added after the memo was written is seen by the next publish.
        router.subscribe(b"X", subscriber(receiver, 1));
        router.route(
            Origin::Client(publisher),
            &publish("X"),
            b"X",
            &mut connections,
        );
        assert_eq!(queued(&mut connections, receiver), vec![(1, "X".into())]);
        // And one removed is not.
        assert!(router.unsubscribe(b"X", subscriber(receiver, 1)));
        let outcome = router.route(
            Origin::Client(publisher),
            &publish("X"),
            b"X",
            &mut connections,
        );
        assert!(!outcome.matched);
        assert!(queued(&mut connections, receiver).is_empty());
        // A forgotten publisher has its subject checked again.
        router.forget_publisher(publisher);
        assert!(!router.knows_subject(publisher, b"X"));
    });
}

/// The check runs for a publisher's first subject, for every other subject, and again for a
/// subject that passed only once (an answer a request allows); a repeat of a subject that passed
/// for good is not checked. A refused publish routes nothing and leaves the memo as it was.
#[test]
fn the_subject_check_runs_once_per_subject_unless_it_passed_only_once() {
    run(async {
        let mut connections = Connections::with_key();
        let publisher = connection(&mut connections, client()).await;
        let receiver = connection(&mut connections, client()).await;
        let mut router = Router::new();
        router.subscribe(b">", subscriber(receiver, 1));
        let mut checks = Vec::new();
        let mut send = |router: &mut Router,
                        connections: &mut Connections,
                        subject: &str,
                        verdict: SubjectCheck| {
            router.route_checked(
                Origin::Client(publisher),
                &publish(subject),
                subject.as_bytes(),
                &[],
                connections,
                None,
                |checked, _| {
                    checks.push(String::from_utf8_lossy(checked).into_owned());
                    verdict
                },
            )
        };
        use SubjectCheck::{Once, Refused, Repeatable};
        assert!(send(&mut router, &mut connections, "A", Repeatable).is_some());
        assert!(send(&mut router, &mut connections, "A", Refused).is_some()); // not asked
        assert!(send(&mut router, &mut connections, "B", Refused).is_none());
        assert!(router.knows_subject(publisher, b"A")); // the refusal left the memo
        assert!(send(&mut router, &mut connections, "A", Refused).is_some()); // not asked
        assert!(send(&mut router, &mut connections, "R", Once).is_some());
        assert!(send(&mut router, &mut connections, "R", Refused).is_none()); // asked again
        assert!(send(&mut router, &mut connections, "R", Once).is_some());
        let delivered: Vec<String> = queued(&mut connections, receiver)
            .into_iter()
            .map(|(_, subject)| subject)
            .collect();
        assert_eq!(delivered, ["A", "A", "A", "R", "R"]);
        assert_eq!(checks, ["A", "B", "R", "R", "R"]);
    });
}

/// A fan-out still going when its deadline passes stops after a slice and is finished by
/// `resume`, every copy in order; a link among the rest gets its one copy even though another
/// message reached it in between (which overwrote its "already has it" mark).
#[test]
fn a_fan_out_past_its_deadline_is_finished_by_resume_in_order() {
    run(async {
        let mut connections = Connections::with_key();
        let publisher = connection(&mut connections, client()).await;
        let receiver = connection(&mut connections, client()).await;
        let peer = connection(&mut connections, link()).await;
        let other = connection(&mut connections, client()).await;
        let mut router = Router::new();
        let n = (SUBSCRIBERS_BETWEEN_CLOCK_CHECKS * 2 + 10) as u32;
        for id in 1..=n {
            router.subscribe(b"BIG", subscriber(receiver, id));
        }
        router.subscribe(b"BIG", subscriber(peer, 1));
        router.subscribe(b"SMALL", subscriber(peer, 2));
        let passed = Instant::now();
        let outcome = router
            .route_checked(
                Origin::Client(publisher),
                &publish("BIG"),
                b"BIG",
                &[],
                &mut connections,
                Some(passed),
                |_, _| SubjectCheck::Repeatable,
            )
            .unwrap();
        assert!(outcome.unfinished && outcome.delivered);
        assert_eq!(outcome.visited, SUBSCRIBERS_BETWEEN_CLOCK_CHECKS);
        assert!(router.has_unfinished());
        assert!(router.is_unfinished_from(publisher));
        assert!(!router.is_unfinished_from(other));
        router.route(
            Origin::Client(other),
            &publish("SMALL"),
            b"SMALL",
            &mut connections,
        );
        let mut slices = 0;
        while let Some(outcome) = router.resume(&mut connections, passed) {
            slices += 1;
            if !outcome.unfinished {
                break;
            }
        }
        assert_eq!(slices, 2);
        assert!(!router.has_unfinished());
        assert!(router.resume(&mut connections, passed).is_none());
        let ids: Vec<u32> = queued(&mut connections, receiver)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, (1..=n).collect::<Vec<_>>());
        assert_eq!(
            queued(&mut connections, peer),
            vec![(0, "SMALL".into()), (0, "BIG".into())]
        );
        // Without a deadline nothing is left over, however many match.
        let outcome = router
            .route_checked(
                Origin::Client(publisher),
                &publish("BIG"),
                b"BIG",
                &[],
                &mut connections,
                None,
                |_, _| SubjectCheck::Repeatable,
            )
            .unwrap();
        assert!(!outcome.unfinished);
        assert_eq!(outcome.visited, n as usize + 1);
    });
}

#[test]
fn gateway_answers_route_like_a_client_publish() {
    run(async {
        let mut connections = Connections::with_key();
        let peer = connection(&mut connections, link()).await;
        let requester = connection(&mut connections, client()).await;
        let mut router = Router::new();
        router.subscribe(b"_INBOX.>", subscriber(peer, 1));
        router.subscribe(b"_INBOX.abc.*", subscriber(requester, 2));
        let answer = publish("_INBOX.abc.1");
        let outcome = router.route(Origin::Gateway, &answer, b"_INBOX.abc.1", &mut connections);
        assert!(outcome.delivered);
        assert_eq!(
            queued(&mut connections, peer),
            vec![(0, "_INBOX.abc.1".into())]
        );
        assert_eq!(
            queued(&mut connections, requester),
            vec![(2, "_INBOX.abc.1".into())]
        );
        assert_eq!(
            router.subscription_matching(requester, b"_INBOX.abc.7"),
            Some(2)
        );
        assert_eq!(router.subscription_matching(requester, b"_INBOX.x.7"), None);
    });
}

#[test]
fn top_subjects_are_counted_on_the_memo_and_folded_when_the_subject_changes() {
    run(async {
        let mut connections = Connections::with_key();
        let publisher = connection(&mut connections, client()).await;
        let other = connection(&mut connections, client()).await;
        let peer = connection(&mut connections, link()).await;
        let mut router = Router::with_subject_tally(true);
        let a = publish("A");
        let b = publish("B.x");
        let mut route = |router: &mut Router, origin, frame: &Vec<u8>, subject: &[u8]| {
            router.route(origin, frame, subject, &mut connections);
        };
        route(&mut router, Origin::Client(publisher), &a, b"A");
        route(&mut router, Origin::Client(publisher), &a, b"A");
        route(&mut router, Origin::Client(publisher), &b, b"B.x");
        // The memo counts; only the change of subject folded "A" into the tally.
        assert_eq!(router.subjects.close_window(5).total.messages, 2);

        route(&mut router, Origin::Client(publisher), &a, b"A");
        route(&mut router, Origin::Client(other), &b, b"B.x");
        // Messages from peers and from the gateway are not counted (SPEC §11: local clients).
        route(&mut router, Origin::Peer(peer), &a, b"A");
        route(&mut router, Origin::Gateway, &a, b"A");
        // A forgotten memo is folded first.
        router.forget_publisher(other);
        let window = router.close_subject_window(5);
        assert_eq!(window.total.messages, 3);
        let counts: Vec<(String, u64, u64)> = window
            .by_messages
            .iter()
            .map(|entry| {
                (
                    entry.subject.clone(),
                    entry.count.messages,
                    entry.count.bytes,
                )
            })
            .collect();
        assert_eq!(
            counts,
            vec![
                ("B.x".into(), 2, 2 * b.len() as u64),
                ("A".into(), 1, a.len() as u64),
            ]
        );
        // The next window starts from nothing.
        assert_eq!(router.close_subject_window(5).total.messages, 0);
    });
}

#[test]
fn no_tally_when_monitoring_is_off() {
    run(async {
        let mut connections = Connections::with_key();
        let publisher = connection(&mut connections, client()).await;
        let mut router = Router::new();
        for subject in ["A", "B", "A"] {
            router.route(
                Origin::Client(publisher),
                &publish(subject),
                subject.as_bytes(),
                &mut connections,
            );
        }
        assert_eq!(router.close_subject_window(5).total.messages, 0);
    });
}
