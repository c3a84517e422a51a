//! Request/reply through the gateway (SPEC §7.4, §9): reply subjects pass through,
//! NO_RESPONDERS for MM/2 clients that asked, gateway requests.

use std::time::Duration;

use mm_testkit::{GatewayProcess, RawClient, RawClientOptions};
use mm_wire::{Action, Message};

const SERVICE: &str = "TEST";

#[test]
fn reply_subjects_pass_through_and_replies_route_back() {
    let gateway = GatewayProcess::start(&[]);
    let mut responder = RawClient::mm2(gateway.address(), SERVICE);
    responder.subscribe(1, "Service.Add");
    responder.flush();
    let mut requester = RawClient::mm2(gateway.address(), SERVICE);
    let inbox = "_INBOX.k3Jx9aQ0pLm2Zr8sT4uVw6";
    requester.subscribe(9, &format!("{inbox}.*"));
    requester.publish(
        "Service.Add",
        &format!("{inbox}.1"),
        &Message::new().add_f64("A", 0.5).add_f64("B", 1.5),
    );
    let request = responder.expect_action(Action::SendMessage);
    assert_eq!(request.reply_subject(), format!("{inbox}.1").as_bytes());
    let body = request.message().unwrap();
    let sum = body.get_f64("A").unwrap() + body.get_f64("B").unwrap();
    let reply_to = String::from_utf8(request.reply_subject().to_vec()).unwrap();
    responder.publish(&reply_to, "", &Message::new().add_f64("sum", sum));
    let reply = requester.expect_action(Action::SendMessage);
    assert_eq!(reply.subscription_id(), 9);
    assert_eq!(reply.message().unwrap().get_f64("sum"), Ok(2.0));
}

#[test]
fn no_responders_for_mm2_clients_that_asked() {
    let gateway = GatewayProcess::start(&[]);
    let mut requester = RawClient::mm2(gateway.address(), SERVICE);
    requester.subscribe(3, "_INBOX.me.*");
    requester.publish("Nobody.home", "_INBOX.me.1", &Message::new());
    let frame = requester.expect_action(Action::NoResponders);
    assert_eq!(
        frame.subscription_id(),
        3,
        "the subscription matching the reply subject"
    );
    assert_eq!(frame.subject(), b"_INBOX.me.1");
    assert_eq!(frame.reply_subject(), b"Nobody.home");
    assert!(frame.message().unwrap().is_empty());
    // Without a matching inbox subscription the id is 0.
    requester.publish("Nobody.home", "OTHER.reply", &Message::new());
    assert_eq!(
        requester
            .expect_action(Action::NoResponders)
            .subscription_id(),
        0
    );
    // A publish without a reply subject never gets one.
    requester.publish("Nobody.home", "", &Message::new());
    requester.assert_nothing_pending();
}

#[test]
fn no_no_responders_when_not_asked_or_when_someone_listens() {
    let gateway = GatewayProcess::start(&[]);
    let mut options = RawClientOptions::mm2(SERVICE);
    options.options.no_responders = false;
    let mut quiet = RawClient::connect(gateway.address(), options);
    quiet.publish("Nobody.home", "_INBOX.q.1", &Message::new());
    quiet.assert_nothing_pending();

    let mut listener = RawClient::mm2(gateway.address(), SERVICE);
    listener.subscribe(1, "Somebody.*");
    listener.flush();
    let mut requester = RawClient::mm2(gateway.address(), SERVICE);
    requester.publish("Somebody.home", "_INBOX.r.1", &Message::new());
    requester.assert_nothing_pending();
    assert_eq!(
        listener.expect_action(Action::SendMessage).subject(),
        b"Somebody.home"
    );
}

#[test]
fn gateway_requests_are_answered_and_never_cause_no_responders() {
    let gateway = GatewayProcess::start(&["--name", "gw-stats"]);
    let mut client = RawClient::mm2(gateway.address(), SERVICE);
    let mut spy = RawClient::mm2(gateway.address(), SERVICE);
    spy.subscribe(1, "_MM.>");
    spy.flush();
    let stats = client.stats(50);
    assert_eq!(stats.get_string("service"), Ok(SERVICE));
    assert_eq!(stats.get_string("gateway_name"), Ok("gw-stats"));
    assert_eq!(stats.get_u32("clients"), Ok(2));
    client.assert_nothing_pending();
    // The request itself was not delivered to subscribers of _MM.>.
    spy.assert_nothing_pending();
    // MM/1 clients may ask too.
    let mut legacy = RawClient::mm1(gateway.address(), SERVICE);
    let stats = legacy.stats(60);
    assert_eq!(stats.get_u32("clients"), Ok(3));
    let _ = Duration::ZERO;
}
