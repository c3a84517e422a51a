//! The mesh state machine in memory: events in, effects out. No sockets, no clock.

use std::time::Duration;

use mm_wire::handshake::Protocol;
use mm_wire::{Action, Frame, Message};
use slotmap::SlotMap;

use super::*;
use crate::config::MeshConfig;

const OWN_ID: &str = "00000000000000000000000000000001";
const PEER_ID: &str = "00000000000000000000000000000002";

fn keys(count: usize) -> Vec<ConnectionKey> {
    let mut map = SlotMap::<ConnectionKey, ()>::with_key();
    (0..count).map(|_| map.insert(())).collect()
}

fn mesh(addresses: &[&str]) -> Mesh {
    let config = MeshConfig {
        service: "TEST".into(),
        gateways: addresses
            .iter()
            .map(|address| address.to_string())
            .collect(),
    };
    Mesh::new("TEST", OWN_ID, Some(&config), Duration::from_secs(2))
}

/// The frames sent, as (to, action, subscription id, subject), in order; other effects are
/// skipped.
fn sent(out: &MeshOutput) -> Vec<(ConnectionKey, Action, u32, String)> {
    out.effects
        .iter()
        .filter_map(|effect| match effect {
            MeshEffect::Send { to, frame } => {
                let frame = Frame::parse(bytes::Bytes::copy_from_slice(out.frame(frame.clone())))
                    .expect("a whole frame");
                let header = frame.header();
                Some((
                    *to,
                    frame.action().expect("a known action"),
                    header.subscription_id,
                    String::from_utf8_lossy(header.subject).into_owned(),
                ))
            }
            _ => None,
        })
        .collect()
}

/// Brings up a dialled link for dialler 0 as `key`, through the events a real dial goes through.
fn link_up(mesh: &mut Mesh, key: ConnectionKey, peer_id: &str, out: &mut MeshOutput) {
    out.clear();
    mesh.start(out);
    let MeshEffect::DialAfter {
        dialer, attempt, ..
    } = out.effects[0].clone()
    else {
        panic!("expected a dial timer, got {:?}", out.effects);
    };
    out.clear();
    mesh.dial_due(dialer, attempt, out);
    let MeshEffect::Connect { attempt, .. } = out.effects[0].clone() else {
        panic!("expected a connect, got {:?}", out.effects);
    };
    out.clear();
    assert_eq!(
        mesh.dial_succeeded(dialer, attempt, Some(peer_id)),
        DialVerdict::Attach
    );
    mesh.dialled_link_up(dialer, key, Some(peer_id.into()), Protocol::Mm2, out);
}

#[test]
fn interest_is_counted_over_local_clients_and_sent_on_zero_to_one_and_one_to_zero() {
    let [link] = keys(1)[..] else { unreachable!() };
    let mut mesh = mesh(&["peer:5050"]);
    let mut out = MeshOutput::default();
    link_up(&mut mesh, link, PEER_ID, &mut out);
    out.clear();

    mesh.interest_added(b"A.>", &mut out);
    mesh.interest_added(b"A.>", &mut out);
    mesh.interest_added(b"B", &mut out);
    let frames = sent(&out);
    assert_eq!(
        frames,
        vec![
            (link, Action::Subscribe, 1, "A.>".into()),
            (link, Action::Subscribe, 2, "B".into()),
        ],
        "one SUBSCRIBE per pattern, on its first holder"
    );
    assert_eq!(mesh.interest_count(b"A.>"), 2);
    out.clear();

    mesh.interest_removed(b"A.>", &mut out);
    assert!(sent(&out).is_empty(), "one holder is left");
    mesh.interest_removed(b"A.>", &mut out);
    assert_eq!(
        sent(&out),
        vec![(link, Action::Unsubscribe, 1, "A.>".into())],
        "UNSUBSCRIBE with the same id when the last holder leaves"
    );
    assert_eq!(mesh.interest_len(), 1);

    // A pattern that comes back gets a new id (ids are never reused on a link).
    out.clear();
    mesh.interest_added(b"A.>", &mut out);
    assert_eq!(sent(&out), vec![(link, Action::Subscribe, 3, "A.>".into())]);
}

#[test]
fn a_link_that_comes_up_gets_every_local_pattern_replayed() {
    let [first, second] = keys(2)[..] else {
        unreachable!()
    };
    let mut mesh = mesh(&["peer:5050"]);
    let mut out = MeshOutput::default();
    // Interest before any link: nothing to send.
    mesh.interest_added(b"X.*", &mut out);
    mesh.interest_added(b"Y", &mut out);
    assert!(sent(&out).is_empty());

    link_up(&mut mesh, first, PEER_ID, &mut out);
    let mut replayed = sent(&out);
    replayed.sort_by(|a, b| a.3.cmp(&b.3));
    assert_eq!(
        replayed,
        vec![
            (first, Action::Subscribe, 1, "X.*".into()),
            (first, Action::Subscribe, 2, "Y".into()),
        ]
    );

    // The link drops: the dialler backs off and redials; the new link is replayed in full.
    out.clear();
    mesh.link_closed(first, CloseReason::PeerClosed, &mut out);
    let Some(MeshEffect::DialAfter {
        dialer,
        attempt,
        delay,
    }) = out.effects.first().cloned()
    else {
        panic!("expected a redial, got {:?}", out.effects);
    };
    assert!(delay >= FIRST_REDIAL && delay <= FIRST_REDIAL * 2);
    assert_eq!(mesh.dialers()[0].state, DialState::Backoff);
    out.clear();
    mesh.dial_due(dialer, attempt, &mut out);
    let MeshEffect::Connect { attempt, .. } = out.effects[0].clone() else {
        panic!("expected a connect");
    };
    out.clear();
    assert_eq!(
        mesh.dial_succeeded(dialer, attempt, Some(PEER_ID)),
        DialVerdict::Attach
    );
    mesh.dialled_link_up(
        dialer,
        second,
        Some(PEER_ID.into()),
        Protocol::Mm2,
        &mut out,
    );
    assert_eq!(sent(&out).len(), 2);
    assert!(sent(&out).iter().all(|frame| frame.0 == second));
    assert_eq!(mesh.dialers()[0].state, DialState::Up);
}

#[test]
fn failed_dials_back_off_doubling_up_to_the_cap_and_stale_results_are_ignored() {
    let mut mesh = mesh(&["nowhere:1"]);
    let mut out = MeshOutput::default();
    mesh.start(&mut out);
    let mut delays = Vec::new();
    let MeshEffect::DialAfter {
        mut dialer,
        mut attempt,
        ..
    } = out.effects[0].clone()
    else {
        panic!()
    };
    for _ in 0..8 {
        out.clear();
        mesh.dial_due(dialer, attempt, &mut out);
        let MeshEffect::Connect {
            attempt: connect, ..
        } = out.effects[0].clone()
        else {
            panic!()
        };
        // A result of an older attempt changes nothing.
        out.clear();
        mesh.dial_failed(dialer, connect - 1, LinkError::ConnectTimeout, &mut out);
        assert!(out.effects.is_empty());
        mesh.dial_failed(dialer, connect, LinkError::ConnectTimeout, &mut out);
        let MeshEffect::DialAfter {
            dialer: next_dialer,
            attempt: next,
            delay,
        } = out.effects[0].clone()
        else {
            panic!()
        };
        delays.push(delay);
        dialer = next_dialer;
        attempt = next;
    }
    assert_eq!(mesh.link_dials(), 8);
    assert!(delays[0] < Duration::from_millis(130), "{delays:?}");
    assert!(delays[1] >= Duration::from_millis(200), "{delays:?}");
    assert!(
        delays
            .iter()
            .all(|delay| *delay <= Duration::from_millis(2500)),
        "capped at 2 s + jitter: {delays:?}"
    );
    assert!(delays[7] >= Duration::from_secs(2));
    assert!(matches!(
        mesh.dialers()[0].last_failure,
        Some(LinkFailure::Dial(LinkError::ConnectTimeout))
    ));
}

#[test]
fn an_address_that_leads_back_here_is_never_dialled_again() {
    let mut mesh = mesh(&["self:5050"]);
    let mut out = MeshOutput::default();
    mesh.start(&mut out);
    let MeshEffect::DialAfter {
        dialer, attempt, ..
    } = out.effects[0].clone()
    else {
        panic!()
    };
    out.clear();
    mesh.dial_due(dialer, attempt, &mut out);
    let MeshEffect::Connect { attempt, .. } = out.effects[0].clone() else {
        panic!()
    };
    assert_eq!(
        mesh.dial_succeeded(dialer, attempt, Some(OWN_ID)),
        DialVerdict::IsSelf
    );
    assert_eq!(mesh.dialers()[0].state, DialState::IsSelf);
    out.clear();
    mesh.dial_due(dialer, attempt + 1, &mut out);
    assert!(out.effects.is_empty());
}

#[test]
fn an_alias_waits_while_another_address_links_to_the_same_peer() {
    let [link, alias_link] = keys(2)[..] else {
        unreachable!()
    };
    let mut mesh = mesh(&["peer:5050", "alias:5050"]);
    let mut out = MeshOutput::default();
    mesh.start(&mut out);
    let timers: Vec<MeshEffect> = out.effects.clone();
    out.clear();
    for timer in &timers {
        let MeshEffect::DialAfter {
            dialer, attempt, ..
        } = timer.clone()
        else {
            panic!()
        };
        mesh.dial_due(dialer, attempt, &mut out);
    }
    let connects: Vec<(DialerId, u64)> = out
        .effects
        .iter()
        .map(|effect| match effect {
            MeshEffect::Connect {
                dialer, attempt, ..
            } => (*dialer, *attempt),
            other => panic!("{other:?}"),
        })
        .collect();
    out.clear();
    // Both reach the same peer: the second replaces the first.
    for (index, &(dialer, attempt)) in connects.iter().enumerate() {
        assert_eq!(
            mesh.dial_succeeded(dialer, attempt, Some(PEER_ID)),
            DialVerdict::Attach
        );
        let key = [link, alias_link][index];
        mesh.dialled_link_up(dialer, key, Some(PEER_ID.into()), Protocol::Mm2, &mut out);
    }
    assert!(out.effects.contains(&MeshEffect::Close {
        link,
        reason: CloseReason::ReplacedByNewerLink
    }));
    out.clear();
    // The replaced link closes; its dialler redials later and finds the peer linked: it waits.
    mesh.link_closed(link, CloseReason::ReplacedByNewerLink, &mut out);
    let MeshEffect::DialAfter {
        dialer, attempt, ..
    } = out.effects[0].clone()
    else {
        panic!("{:?}", out.effects)
    };
    out.clear();
    mesh.dial_due(dialer, attempt, &mut out);
    assert!(out.effects.is_empty());
    assert_eq!(mesh.dialers()[dialer].state, DialState::Suppressed);
    // When the other link drops, the waiting dialler dials at once.
    mesh.link_closed(alias_link, CloseReason::PeerClosed, &mut out);
    assert!(out.effects.iter().any(|effect| matches!(
        effect,
        MeshEffect::DialAfter { dialer: waiting, delay, .. }
            if *waiting == dialer && delay.is_zero()
    )));
}

#[test]
fn mesh_flush_answers_after_every_mm2_link_confirms_or_drops() {
    let [first, second, client, other_client] = keys(4)[..] else {
        unreachable!()
    };
    let mut mesh = mesh(&["a:1", "b:1"]);
    let mut out = MeshOutput::default();
    // Two links up, one per dialler.
    mesh.start(&mut out);
    let timers = out.effects.clone();
    out.clear();
    for timer in timers {
        let MeshEffect::DialAfter {
            dialer, attempt, ..
        } = timer
        else {
            panic!()
        };
        mesh.dial_due(dialer, attempt, &mut out);
    }
    let connects = out.effects.clone();
    out.clear();
    for (index, connect) in connects.into_iter().enumerate() {
        let MeshEffect::Connect {
            dialer, attempt, ..
        } = connect
        else {
            panic!()
        };
        let peer = format!("{:032x}", index + 10);
        assert_eq!(
            mesh.dial_succeeded(dialer, attempt, Some(&peer)),
            DialVerdict::Attach
        );
        mesh.dialled_link_up(
            dialer,
            [first, second][index],
            Some(peer),
            Protocol::Mm2,
            &mut out,
        );
    }
    out.clear();

    mesh.start_flush(client, b"\x00\x00\x00\x00", &mut out)
        .unwrap();
    let pings = sent(&out);
    assert_eq!(pings.len(), 2);
    assert!(pings.iter().all(|frame| frame.1 == Action::Ping));
    out.clear();
    // No interest changed since those PINGs: the next flush waits for the same ones.
    mesh.start_flush(other_client, b"\x00\x00\x00\x00", &mut out)
        .unwrap();
    assert!(sent(&out).is_empty());
    assert_eq!(mesh.pending_flushes(), 2);

    // The first link answers: nobody is answered yet.
    mesh.link_pong(first, &Message::new().add_u64("flush", 1), &mut out);
    assert!(sent(&out).is_empty());
    // A heartbeat PONG (no `flush`) changes nothing.
    mesh.link_pong(second, &Message::new(), &mut out);
    assert!(sent(&out).is_empty());
    // Interest changes after the PINGs: a third flush needs new PINGs behind them.
    mesh.interest_added(b"NEW", &mut out);
    out.clear();
    mesh.start_flush(client, b"\x00\x00\x00\x00", &mut out)
        .unwrap();
    let pings = sent(&out);
    assert_eq!(pings.len(), 2);
    assert!(pings.iter().all(|frame| frame.1 == Action::Ping));
    out.clear();
    // The second link answers its first PING: the first two flushes are answered, in order.
    mesh.link_pong(second, &Message::new().add_u64("flush", 2), &mut out);
    assert_eq!(
        sent(&out),
        vec![
            (client, Action::Pong, 0, String::new()),
            (other_client, Action::Pong, 0, String::new())
        ]
    );
    out.clear();
    // The first link answers the newest PING; the second drops before answering: the third
    // flush no longer waits for it.
    mesh.link_pong(first, &Message::new().add_u64("flush", 3), &mut out);
    assert!(sent(&out).is_empty());
    mesh.link_closed(second, CloseReason::PeerClosed, &mut out);
    assert_eq!(sent(&out), vec![(client, Action::Pong, 0, String::new())]);
    assert_eq!(mesh.pending_flushes(), 0);

    // With no MM/2 link up, a flush is answered at once.
    out.clear();
    mesh.link_closed(first, CloseReason::PeerClosed, &mut out);
    out.clear();
    mesh.start_flush(client, b"\x00\x00\x00\x00", &mut out)
        .unwrap();
    assert_eq!(sent(&out), vec![(client, Action::Pong, 0, String::new())]);
}

#[test]
fn a_flood_of_mesh_flushes_costs_one_ping_per_link_and_is_capped_per_client() {
    let [link, client, other] = keys(3)[..] else {
        unreachable!()
    };
    let mut mesh = mesh(&["peer:5050"]);
    let mut out = MeshOutput::default();
    link_up(&mut mesh, link, PEER_ID, &mut out);
    out.clear();
    for _ in 0..MAX_PENDING_FLUSHES_PER_CONNECTION {
        mesh.start_flush(client, b"\x00\x00\x00\x00", &mut out)
            .unwrap();
    }
    assert_eq!(sent(&out).len(), 1, "one PING for all of them");
    assert_eq!(
        mesh.start_flush(client, b"\x00\x00\x00\x00", &mut out),
        Err(FlushRefused::TooMany)
    );
    // Another client is not held back by the first one's cap.
    mesh.start_flush(other, b"\x00\x00\x00\x00", &mut out)
        .unwrap();
    assert_eq!(
        mesh.start_flush(other, &[0; MAX_FLUSH_BODY_BYTES + 1], &mut out),
        Err(FlushRefused::BodyTooLarge)
    );
    out.clear();
    // One answer completes them all, in order.
    mesh.link_pong(link, &Message::new().add_u64("flush", 1), &mut out);
    let pongs = sent(&out);
    assert_eq!(pongs.len(), MAX_PENDING_FLUSHES_PER_CONNECTION as usize + 1);
    assert_eq!(pongs.last().unwrap().0, other);
    assert_eq!(mesh.pending_flushes(), 0);
    // The cap counts flushes in progress only.
    out.clear();
    mesh.start_flush(client, b"\x00\x00\x00\x00", &mut out)
        .unwrap();
    assert_eq!(sent(&out), vec![(client, Action::Pong, 0, String::new())]);
}

#[test]
fn accepted_links_replace_older_ones_from_the_same_peer() {
    let [older, newer, other] = keys(3)[..] else {
        unreachable!()
    };
    let mut mesh = mesh(&[]);
    let mut out = MeshOutput::default();
    mesh.accepted_link_up(older, Some(PEER_ID.into()), "older".into(), &mut out);
    mesh.accepted_link_up(
        other,
        Some(OWN_ID.replace('1', "3")),
        "other".into(),
        &mut out,
    );
    assert!(out.effects.is_empty());
    mesh.accepted_link_up(newer, Some(PEER_ID.into()), "newer".into(), &mut out);
    assert_eq!(
        out.effects,
        vec![MeshEffect::Close {
            link: older,
            reason: CloseReason::ReplacedByNewerLink
        }]
    );
    // Accepted links carry no interest of ours and hold up no flush.
    out.clear();
    mesh.interest_added(b"A", &mut out);
    assert!(sent(&out).is_empty());
    mesh.link_closed(older, CloseReason::ReplacedByNewerLink, &mut out);
    assert!(out.effects.is_empty());
}

#[test]
fn replacing_an_accepted_link_is_rate_limited_per_peer_id() {
    use std::time::Instant;

    use super::{LINK_REPLACEMENT_INTERVAL, LinkRefused};
    let [first, second, third] = keys(3)[..] else {
        unreachable!()
    };
    let mut mesh = mesh(&[]);
    let mut out = MeshOutput::default();
    let start = Instant::now();
    // A first link is no replacement.
    assert_eq!(mesh.may_accept_link(Some(PEER_ID), start), Ok(()));
    mesh.accepted_link_up(first, Some(PEER_ID.into()), "first".into(), &mut out);
    // The first replacement is allowed; another one soon after is not (two claimants cannot
    // make the link flap), whatever the claimant.
    assert_eq!(mesh.may_accept_link(Some(PEER_ID), start), Ok(()));
    mesh.accepted_link_up(second, Some(PEER_ID.into()), "second".into(), &mut out);
    mesh.link_closed(first, CloseReason::ReplacedByNewerLink, &mut out);
    let soon = start + LINK_REPLACEMENT_INTERVAL / 2;
    assert_eq!(
        mesh.may_accept_link(Some(PEER_ID), soon),
        Err(LinkRefused::ReplacedTooRecently(PEER_ID.into()))
    );
    // Other peers are not affected, nor MM/1 peers without an id.
    assert_eq!(
        mesh.may_accept_link(Some(&OWN_ID.replace('1', "3")), soon),
        Ok(())
    );
    assert_eq!(mesh.may_accept_link(None, soon), Ok(()));
    // Later, a replacement is allowed again.
    let later = start + LINK_REPLACEMENT_INTERVAL;
    assert_eq!(mesh.may_accept_link(Some(PEER_ID), later), Ok(()));
    mesh.accepted_link_up(third, Some(PEER_ID.into()), "third".into(), &mut out);
}
