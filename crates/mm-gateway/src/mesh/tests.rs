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
        ..MeshConfig::default()
    };
    Mesh::new("TEST", OWN_ID, Some(&config), Duration::from_secs(2), GRACE)
}

/// Grace period of peers that discovery no longer lists, in these tests.
const GRACE: Duration = Duration::from_secs(3);

/// The first dialler (the first configured address).
fn first_dialer(mesh: &Mesh) -> &Dialer {
    mesh.dialers().next().expect("a dialler").1
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
    assert_eq!(first_dialer(&mesh).state, DialState::Backoff);
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
    assert_eq!(first_dialer(&mesh).state, DialState::Up);
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
        first_dialer(&mesh).last_failure,
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
    assert_eq!(first_dialer(&mesh).state, DialState::IsSelf);
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
    assert_eq!(mesh.dialer(dialer).unwrap().state, DialState::Suppressed);
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

// -------------------------------------------------------------------------------------------
// Membership: peer sets from discovery
// -------------------------------------------------------------------------------------------

fn etcd_peers(mesh: &mut Mesh, addresses: &[&str], out: &mut MeshOutput) {
    let addresses: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
    mesh.peers_changed(PeerSource::Etcd, &addresses, out);
}

fn dialer_of(mesh: &Mesh, address: &str) -> Option<DialerId> {
    mesh.dialers()
        .find(|(_, dialer)| dialer.address == address)
        .map(|(id, _)| id)
}

/// Drives a dialler from its timer to a link up as `key`.
fn bring_up(
    mesh: &mut Mesh,
    dialer: DialerId,
    key: ConnectionKey,
    peer: &str,
    out: &mut MeshOutput,
) {
    let timer = out
        .effects
        .iter()
        .find_map(|effect| match effect {
            MeshEffect::DialAfter {
                dialer: d, attempt, ..
            } if *d == dialer => Some(*attempt),
            _ => None,
        })
        .expect("a dial timer for the dialler");
    out.clear();
    mesh.dial_due(dialer, timer, out);
    let MeshEffect::Connect { attempt, .. } = out.effects[0].clone() else {
        panic!("expected a connect, got {:?}", out.effects);
    };
    out.clear();
    assert_eq!(
        mesh.dial_succeeded(dialer, attempt, Some(peer)),
        DialVerdict::Attach
    );
    mesh.dialled_link_up(dialer, key, Some(peer.into()), Protocol::Mm2, out);
}

#[test]
fn discovered_peers_are_dialled_at_once_and_a_repeated_set_changes_nothing() {
    let mut mesh = mesh(&[]);
    let mut out = MeshOutput::default();
    // Before the service starts, a peer set only records the diallers.
    etcd_peers(&mut mesh, &["a:1"], &mut out);
    assert!(out.effects.is_empty());
    mesh.start(&mut out);
    assert_eq!(
        out.effects.len(),
        1,
        "the recorded dialler starts with the mesh"
    );
    out.clear();
    // After the start, a new address dials at once.
    etcd_peers(&mut mesh, &["a:1", "b:1", "b:1"], &mut out);
    let b = dialer_of(&mesh, "b:1").expect("a dialler for b");
    assert_eq!(
        out.effects,
        vec![MeshEffect::DialAfter {
            dialer: b,
            attempt: 1,
            delay: Duration::ZERO
        }],
        "one dialler per address, dialled at once"
    );
    assert_eq!(mesh.dialers().count(), 2);
    assert_eq!(mesh.dialer(b).unwrap().found_by(), "etcd");
    out.clear();
    etcd_peers(&mut mesh, &["b:1", "a:1"], &mut out);
    assert!(out.effects.is_empty(), "{:?}", out.effects);
    assert_eq!(mesh.sources()[0].peers, Some(2));
}

#[test]
fn a_vanished_peer_keeps_its_link_for_the_grace_period_then_is_dropped_for_good() {
    let [link] = keys(1)[..] else { unreachable!() };
    let mut mesh = mesh(&[]);
    let mut out = MeshOutput::default();
    mesh.start(&mut out);
    mesh.interest_added(b"X", &mut out);
    etcd_peers(&mut mesh, &["peer:1"], &mut out);
    let dialer = dialer_of(&mesh, "peer:1").unwrap();
    bring_up(&mut mesh, dialer, link, PEER_ID, &mut out);
    assert_eq!(sent(&out), vec![(link, Action::Subscribe, 1, "X".into())]);
    out.clear();

    // The registration disappears: nothing happens to the link yet, a drop is scheduled.
    etcd_peers(&mut mesh, &[], &mut out);
    let [
        MeshEffect::DropAfter {
            dialer: leaving,
            departure,
            delay,
        },
    ] = out.effects[..]
    else {
        panic!("expected a drop timer, got {:?}", out.effects);
    };
    assert_eq!((leaving, delay), (dialer, GRACE));
    let entry = mesh.dialer(dialer).unwrap();
    assert_eq!(entry.state, DialState::Up);
    assert!(entry.leaving.is_some());
    assert_eq!(entry.found_by(), "etcd", "still says how it was found");
    out.clear();

    // The grace period ends: the link is closed, and the dialler is gone.
    mesh.drop_due(dialer, departure, &mut out);
    assert_eq!(
        out.effects,
        vec![MeshEffect::Close {
            link,
            reason: CloseReason::NoLongerDiscovered
        }]
    );
    assert!(mesh.dialer(dialer).is_none());
    assert_eq!(mesh.dialers().count(), 0);
    out.clear();
    // The link closes: no redial; stale timers and dials of the dropped dialler do nothing.
    mesh.link_closed(link, CloseReason::NoLongerDiscovered, &mut out);
    assert!(out.effects.is_empty(), "{:?}", out.effects);
    mesh.dial_due(dialer, 1, &mut out);
    mesh.dial_due(dialer, 2, &mut out);
    mesh.dial_failed(dialer, 2, LinkError::ConnectTimeout, &mut out);
    mesh.drop_due(dialer, departure, &mut out);
    assert!(out.effects.is_empty(), "{:?}", out.effects);
    assert_eq!(
        mesh.dial_succeeded(dialer, 2, Some(PEER_ID)),
        DialVerdict::Stale
    );
    // Interest changes no longer go to the closed link.
    mesh.interest_added(b"Y", &mut out);
    assert!(sent(&out).is_empty());
}

#[test]
fn a_peer_listed_again_within_the_grace_period_keeps_its_link() {
    let [link] = keys(1)[..] else { unreachable!() };
    let mut mesh = mesh(&[]);
    let mut out = MeshOutput::default();
    mesh.start(&mut out);
    etcd_peers(&mut mesh, &["peer:1"], &mut out);
    let dialer = dialer_of(&mesh, "peer:1").unwrap();
    bring_up(&mut mesh, dialer, link, PEER_ID, &mut out);
    out.clear();
    // A lease renewed late: the key goes and comes back.
    etcd_peers(&mut mesh, &[], &mut out);
    let [MeshEffect::DropAfter { departure, .. }] = out.effects[..] else {
        panic!("{:?}", out.effects)
    };
    out.clear();
    etcd_peers(&mut mesh, &["peer:1"], &mut out);
    assert!(out.effects.is_empty(), "no new dial: the link is up");
    assert!(mesh.dialer(dialer).unwrap().leaving.is_none());
    // The old drop timer fires: nothing happens.
    mesh.drop_due(dialer, departure, &mut out);
    assert!(out.effects.is_empty());
    assert_eq!(mesh.dialer(dialer).unwrap().state, DialState::Up);
    // It leaves again: a new departure, which the old timer cannot complete either.
    etcd_peers(&mut mesh, &[], &mut out);
    let [
        MeshEffect::DropAfter {
            departure: again, ..
        },
    ] = out.effects[..]
    else {
        panic!("{:?}", out.effects)
    };
    assert_ne!(again, departure);
    out.clear();
    mesh.drop_due(dialer, departure, &mut out);
    assert!(out.effects.is_empty());
    mesh.drop_due(dialer, again, &mut out);
    assert_eq!(out.effects.len(), 1);
}

#[test]
fn sources_combine_and_each_replaces_only_its_own_set() {
    let mut mesh = mesh(&["static:1", "both:1"]);
    let mut out = MeshOutput::default();
    mesh.start(&mut out);
    out.clear();
    etcd_peers(&mut mesh, &["both:1", "etcd:1"], &mut out);
    let dns = PeerSource::Dns("gateways.example:1".into());
    mesh.peers_changed(dns.clone(), &["etcd:1".into(), "dns:1".into()], &mut out);
    let found_by = |mesh: &Mesh, address: &str| {
        mesh.dialer(dialer_of(mesh, address).unwrap())
            .unwrap()
            .found_by()
    };
    assert_eq!(mesh.dialers().count(), 4, "one dialler per address");
    assert_eq!(found_by(&mesh, "static:1"), "config");
    assert_eq!(found_by(&mesh, "both:1"), "config,etcd");
    assert_eq!(found_by(&mesh, "etcd:1"), "etcd,dns:gateways.example:1");
    assert_eq!(found_by(&mesh, "dns:1"), "dns:gateways.example:1");
    out.clear();

    // etcd lists nothing any more: the configured address stays; one DNS still lists stays.
    etcd_peers(&mut mesh, &[], &mut out);
    assert!(out.effects.is_empty(), "nobody leaves: {:?}", out.effects);
    assert_eq!(found_by(&mesh, "both:1"), "config");
    assert_eq!(found_by(&mesh, "etcd:1"), "dns:gateways.example:1");
    // DNS lists nothing: its two addresses leave; the configured ones never do.
    mesh.peers_changed(dns, &[], &mut out);
    let leaving: Vec<DialerId> = out
        .effects
        .iter()
        .map(|effect| match effect {
            MeshEffect::DropAfter { dialer, .. } => *dialer,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(leaving.len(), 2);
    assert!(leaving.contains(&dialer_of(&mesh, "etcd:1").unwrap()));
    assert!(leaving.contains(&dialer_of(&mesh, "dns:1").unwrap()));
}

#[test]
fn a_new_dialler_in_a_dropped_diallers_slot_ignores_the_old_ones_timers() {
    let mut mesh = mesh(&[]);
    let mut out = MeshOutput::default();
    mesh.start(&mut out);
    etcd_peers(&mut mesh, &["old:1"], &mut out);
    let old = dialer_of(&mesh, "old:1").unwrap();
    let [MeshEffect::DialAfter { attempt, .. }] = out.effects[..] else {
        panic!()
    };
    etcd_peers(&mut mesh, &[], &mut out);
    let Some(MeshEffect::DropAfter { departure, .. }) = out.effects.last().cloned() else {
        panic!()
    };
    mesh.drop_due(old, departure, &mut out);
    out.clear();
    etcd_peers(&mut mesh, &["new:1"], &mut out);
    let new = dialer_of(&mesh, "new:1").unwrap();
    assert_ne!(old, new);
    out.clear();
    // The old dialler's timer fires: the new dialler does not dial because of it.
    mesh.dial_due(old, attempt, &mut out);
    assert!(out.effects.is_empty());
    assert_eq!(mesh.dialer(new).unwrap().dials, 0);
}

#[test]
fn discovery_health_is_recorded_per_source() {
    let mut mesh = mesh(&[]);
    let mut out = MeshOutput::default();
    mesh.discovery_report(
        DiscoveryReport::Health(PeerSource::Etcd, Some("connection refused".into())),
        &mut out,
    );
    assert_eq!(mesh.sources().len(), 1);
    assert_eq!(
        mesh.sources()[0].error.as_deref(),
        Some("connection refused")
    );
    assert_eq!(mesh.sources()[0].peers, None);
    mesh.discovery_report(
        DiscoveryReport::Peers(PeerSource::Etcd, vec!["a:1".into()]),
        &mut out,
    );
    mesh.discovery_report(DiscoveryReport::Health(PeerSource::Etcd, None), &mut out);
    assert_eq!(mesh.sources()[0].error, None);
    assert_eq!(mesh.sources()[0].peers, Some(1));
    assert!(out.effects.is_empty(), "not started: nothing dialled yet");
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

// -------------------------------------------------------------------------------------------
// A mesh-wide flush and diallers on their first attempt
// -------------------------------------------------------------------------------------------

/// Starts a mesh of one peer address and returns the dialler's id and first-attempt number.
fn started_with_one_peer(out: &mut MeshOutput) -> (Mesh, DialerId, u64) {
    let mut mesh = mesh(&["peer:1"]);
    mesh.start(out);
    let [
        MeshEffect::DialAfter {
            dialer, attempt, ..
        },
    ] = out.effects[..]
    else {
        panic!("one dial timer: {:?}", out.effects);
    };
    out.clear();
    (mesh, dialer, attempt)
}

#[test]
fn a_flush_waits_for_a_first_dial_then_for_the_replayed_interest_to_be_confirmed() {
    let [link, client] = keys(2)[..] else {
        unreachable!()
    };
    let mut out = MeshOutput::default();
    let (mut mesh, dialer, attempt) = started_with_one_peer(&mut out);
    mesh.interest_added(b"ORDERS.>", &mut out);
    out.clear();
    // The first dial is only scheduled: the flush waits (before this, it was answered at once,
    // and a publish right after it at the peer reached nobody here).
    mesh.start_flush(client, b"\x00\x00\x00\x01", &mut out)
        .unwrap();
    assert!(sent(&out).is_empty(), "{:?}", sent(&out));
    assert_eq!(mesh.pending_flushes(), 1);
    mesh.dial_due(dialer, attempt, &mut out);
    let [MeshEffect::Connect { attempt, .. }] = out.effects[..] else {
        panic!("{:?}", out.effects)
    };
    out.clear();
    assert_eq!(
        mesh.dial_succeeded(dialer, attempt, Some(PEER_ID)),
        DialVerdict::Attach
    );
    // The link comes up: interest replayed, then a flush PING behind it.
    mesh.dialled_link_up(dialer, link, Some(PEER_ID.into()), Protocol::Mm2, &mut out);
    assert_eq!(
        sent(&out),
        vec![
            (link, Action::Subscribe, 1, "ORDERS.>".into()),
            (link, Action::Ping, 0, String::new()),
        ]
    );
    out.clear();
    assert_eq!(mesh.pending_flushes(), 1, "not before the peer confirms");
    mesh.link_pong(link, &Message::new().add_u64("flush", 1), &mut out);
    assert_eq!(sent(&out), vec![(client, Action::Pong, 0, String::new())]);
    assert_eq!(mesh.pending_flushes(), 0);
}

#[test]
fn a_flush_stops_waiting_for_a_first_dial_that_fails_or_reaches_this_gateway() {
    let [client] = keys(1)[..] else {
        unreachable!()
    };
    // A failed first dial: the flush is answered; a later flush does not wait for redials.
    let mut out = MeshOutput::default();
    let (mut mesh, dialer, attempt) = started_with_one_peer(&mut out);
    mesh.start_flush(client, b"\x00\x00\x00\x01", &mut out)
        .unwrap();
    mesh.dial_due(dialer, attempt, &mut out);
    let Some(MeshEffect::Connect { attempt, .. }) = out.effects.last().cloned() else {
        panic!("{:?}", out.effects)
    };
    out.clear();
    mesh.dial_failed(dialer, attempt, LinkError::ConnectTimeout, &mut out);
    assert_eq!(sent(&out), vec![(client, Action::Pong, 0, String::new())]);
    out.clear();
    mesh.start_flush(client, b"\x00\x00\x00\x02", &mut out)
        .unwrap();
    assert_eq!(sent(&out), vec![(client, Action::Pong, 0, String::new())]);

    // The address is this gateway's own.
    let mut out = MeshOutput::default();
    let (mut mesh, dialer, attempt) = started_with_one_peer(&mut out);
    mesh.start_flush(client, b"\x00\x00\x00\x01", &mut out)
        .unwrap();
    mesh.dial_due(dialer, attempt, &mut out);
    let Some(MeshEffect::Connect { attempt, .. }) = out.effects.last().cloned() else {
        panic!("{:?}", out.effects)
    };
    out.clear();
    assert_eq!(
        mesh.dial_succeeded(dialer, attempt, Some(OWN_ID)),
        DialVerdict::IsSelf
    );
    mesh.recheck_flushes(&mut out);
    assert_eq!(sent(&out), vec![(client, Action::Pong, 0, String::new())]);
}
