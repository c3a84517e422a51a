// The C++ client against a real mm-gateway: pub/sub, wildcards, both dispatch modes,
// request/reply, timeout and no-responders, reconnect, a callback that calls sendRequest,
// unsubscribe guarantees, asynchronous connect, notifications and errors.
#include <atomic>
#include <csignal>
#include <future>
#include <map>
#include <set>

#include <gtest/gtest.h>
#include <messagingmesh/MessagingMesh.h>

#include "Collector.h"
#include "Process.h"

using namespace MessagingMesh;
using namespace std::chrono_literals;
using mmtest::Collector;
using mmtest::kDeadline;

namespace {

class EndToEnd : public ::testing::Test {
protected:
    static void SetUpTestSuite() { gateway_ = new mmtest::Gateway(); }
    static void TearDownTestSuite() {
        delete gateway_;
        gateway_ = nullptr;
    }
    void SetUp() override { service_ = mmtest::uniqueService("E2E"); }

    ConnectionParams params(const std::string& client = "e2e") const {
        return mmtest::params(gateway_->port(), service_, client);
    }

    static mmtest::Gateway* gateway_;
    std::string service_;
};

mmtest::Gateway* EndToEnd::gateway_ = nullptr;

MessagePtr seq(int32_t n) {
    auto message = Message::create();
    message->addSignedInt32("seq", n);
    return message;
}

/// A responder answering {A, B} with {sum: A + B}.
SubscriptionCallback adder() {
    return [](Connection& connection, const std::string&, const std::string& reply, MessagePtr request, void*) {
        auto answer = Message::create();
        answer->addDouble("sum", request->getDouble("A") + request->getDouble("B"));
        connection.sendReply(answer, reply);
    };
}

MessagePtr addRequest(double a, double b) {
    auto message = Message::create();
    message->addDouble("A", a).addDouble("B", b);
    return message;
}

}  // namespace

TEST_F(EndToEnd, PublishedMessagesArriveInOrderWithEveryFieldAndTheTag) {
    Connection subscriber(params("sub"));
    Connection publisher(params("pub"));
    Collector inbox;
    int tag = 0;
    auto subscription = subscriber.subscribe("E2E.ORDER.>", inbox.callback(), &tag);
    EXPECT_EQ(subscription->getSubject(), "E2E.ORDER.>");
    EXPECT_EQ(subscription->getTag(), &tag);
    subscriber.flush();
    publisher.sendMessage(mmtest::allTypes(), "E2E.ORDER.ALL", "E2E.REPLY.HERE");
    for (int i = 0; i < 200; ++i) {
        publisher.sendMessage(seq(i), "E2E.ORDER.SEQ");
    }
    ASSERT_TRUE(inbox.waitFor(201));
    auto all = inbox.all();
    EXPECT_EQ(all[0].subject, "E2E.ORDER.ALL");
    EXPECT_EQ(all[0].replySubject, "E2E.REPLY.HERE");
    EXPECT_EQ(all[0].tag, &tag);
    EXPECT_EQ(*all[0].message, *mmtest::allTypes());
    for (int i = 0; i < 200; ++i) {
        EXPECT_EQ(all[1 + i].message->getSignedInt32("seq"), i);
        EXPECT_EQ(all[1 + i].replySubject, "");
    }
    EXPECT_NE(all[0].thread, std::this_thread::get_id()) << "callback mode runs callbacks on a library thread";
    // The library counts a run of deliveries once its callbacks have returned.
    EXPECT_TRUE(mmtest::waitUntil(kDeadline, [&] { return subscription->getDeliveredCount() == 201u; }))
        << subscription->getDeliveredCount();
    EXPECT_EQ(subscription->getDroppedCount(), 0u);
}

TEST_F(EndToEnd, WildcardsMatchAsRendezvousSubjectsDo) {
    Connection subscriber(params("sub"));
    Connection publisher(params("pub"));
    std::map<std::string, Collector> inboxes;
    std::vector<SubscriptionPtr> subscriptions;
    for (const char* pattern : {"W.*", "W.>", "W.B.C", "*.B.C", "W.*.C"}) {
        subscriptions.push_back(subscriber.subscribe(pattern, inboxes[pattern].callback()));
    }
    subscriber.flush();
    for (const char* subject : {"W.a", "W.B.C", "W.x.y", "V.B.C", "X.y", "W", "W.B.C.D", "W.q.C"}) {
        publisher.sendMessage(Message::create(), subject);
    }
    // End markers: every pattern gets at least one, after everything else (one publisher, in order).
    auto end = Message::create();
    end->addBool("end", true);
    publisher.sendMessage(end, "W.B.C");
    publisher.sendMessage(end, "W.end");
    const std::map<std::string, std::vector<std::string>> expected{
        {"W.*", {"W.a"}},
        {"W.>", {"W.a", "W.B.C", "W.x.y", "W.B.C.D", "W.q.C"}},
        {"W.B.C", {"W.B.C"}},
        {"*.B.C", {"W.B.C", "V.B.C"}},
        {"W.*.C", {"W.B.C", "W.q.C"}},
    };
    for (auto& [pattern, subjects] : expected) {
        Collector& inbox = inboxes[pattern];
        ASSERT_TRUE(mmtest::waitUntil(kDeadline, [&] {
            for (const auto& delivery : inbox.all()) {
                if (delivery.message->hasField("end")) return true;
            }
            return false;
        })) << pattern;
        std::vector<std::string> got;
        for (const auto& delivery : inbox.all()) {
            if (delivery.message->hasField("end")) break;
            got.push_back(delivery.subject);
        }
        EXPECT_EQ(got, subjects) << pattern;
    }
}

TEST_F(EndToEnd, QueueModeRunsCallbacksOnlyInProcessMessageQueueOnTheCallingThread) {
    ConnectionParams queued = params("queue");
    queued.MessageDispatch = PROCESS_MESSAGE_QUEUE;
    Connection subscriber(queued);
    Connection publisher(params("pub"));
    Collector inbox;
    auto subscription = subscriber.subscribe("E2E.Q", inbox.callback());
    subscriber.flush();
    for (int i = 0; i < 10; ++i) publisher.sendMessage(seq(i), "E2E.Q");
    publisher.flush();
    ASSERT_TRUE(mmtest::waitUntil(kDeadline, [&] { return subscriber.getQueueSize() == 10; }));
    EXPECT_EQ(inbox.count(), 0u) << "nothing runs before processMessageQueue";

    MessageQueueInfo info = subscriber.processMessageQueue(1000, 3);
    EXPECT_EQ(info.MessagesProcessed, 3);
    EXPECT_EQ(info.QueueSize, 7);
    info = subscriber.processMessageQueue(0, 0);  // 0: only report
    EXPECT_EQ(info.MessagesProcessed, 0);
    EXPECT_EQ(info.QueueSize, 7);
    info = subscriber.processMessageQueue(std::chrono::milliseconds(1000));
    EXPECT_EQ(info.MessagesProcessed, 7);
    EXPECT_EQ(info.QueueSize, 0);
    auto all = inbox.all();
    ASSERT_EQ(all.size(), 10u);
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(all[i].message->getSignedInt32("seq"), i);
        EXPECT_EQ(all[i].thread, std::this_thread::get_id());
    }

    // wakeUp makes a waiting processMessageQueue return at once (with nothing to do).
    auto waiting = std::async(std::launch::async, [&] {
        const auto start = std::chrono::steady_clock::now();
        subscriber.processMessageQueue(60000);
        return std::chrono::steady_clock::now() - start;
    });
    std::this_thread::sleep_for(50ms);  // let it start waiting (either order is correct: see below)
    subscriber.wakeUp();                // a wake-up before the wait makes the next wait return too
    ASSERT_EQ(waiting.wait_for(kDeadline), std::future_status::ready);
    EXPECT_LT(waiting.get(), 30s);

    Connection callbacks(params("callbacks"));
    EXPECT_THROW(callbacks.processMessageQueue(10), NotQueueModeException);
}

TEST_F(EndToEnd, RequestReplyInEveryForm) {
    Connection responder(params("responder"));
    Connection requester(params("requester"));
    auto service = responder.subscribe("E2E.Add", adder());
    responder.flush();
    MessagePtr reply = requester.sendRequest("E2E.Add", addRequest(0.5, 1.5), 10.0);
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->getDouble("sum"), 2.0);
    reply = requester.sendRequest("E2E.Add", addRequest(1, 2), std::chrono::seconds(10));
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->getDouble("sum"), 3.0);
    EXPECT_EQ(requester.request("E2E.Add", addRequest(2, 3), 10s)->getDouble("sum"), 5.0);

    // The application's own inbox: several replies to one request.
    const std::string inbox = requester.createInbox();
    EXPECT_NE(inbox, requester.createInbox());
    Collector replies;
    auto own = requester.subscribe(inbox, replies.callback());
    requester.flush();
    requester.sendMessage(addRequest(3, 4), "E2E.Add", inbox);
    requester.sendMessage(addRequest(4, 5), "E2E.Add", inbox);
    ASSERT_TRUE(replies.waitFor(2));
    EXPECT_EQ(replies.all()[0].message->getDouble("sum"), 7.0);
    EXPECT_EQ(replies.all()[1].message->getDouble("sum"), 9.0);
    EXPECT_THROW(requester.sendReply(Message::create(), ""), InvalidArgumentException);
}

TEST_F(EndToEnd, TimeoutAndNoRespondersGiveNullptrOrTypedExceptions) {
    Connection silent(params("silent"));
    Connection requester(params("requester"));
    auto ignore = silent.subscribe("E2E.Silent", [](Connection&, const std::string&, const std::string&, MessagePtr, void*) {});
    silent.flush();

    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(requester.sendRequest("E2E.Silent", Message::create(), 0.2), nullptr);
    EXPECT_GE(std::chrono::steady_clock::now() - start, 200ms);
    EXPECT_THROW(requester.request("E2E.Silent", Message::create(), 200ms), TimeoutException);

    // Nobody subscribed: the gateway says so at once.
    start = std::chrono::steady_clock::now();
    EXPECT_EQ(requester.sendRequest("E2E.Nobody", Message::create(), 20.0), nullptr);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 15s);
    try {
        requester.request("E2E.Nobody", Message::create(), 20s);
        FAIL() << "no exception";
    } catch (const NoRespondersException& error) {
        EXPECT_NE(std::string(error.what()).find("E2E.Nobody"), std::string::npos);
    }
}

TEST_F(EndToEnd, ACallbackMaySendARequestInBothDispatchModes) {
    Connection responder(params("responder"));
    auto service = responder.subscribe("E2E.Add", adder());
    responder.flush();
    for (MessageDispatch mode : {CALLBACK_ON_MESSAGING_MESH_THREAD, PROCESS_MESSAGE_QUEUE}) {
        ConnectionParams p = params("nested");
        p.MessageDispatch = mode;
        Connection connection(p);
        std::promise<double> sum;
        auto trigger = connection.subscribe(
            "E2E.Trigger", [&sum](Connection& c, const std::string&, const std::string&, MessagePtr message, void*) {
                MessagePtr reply = c.sendRequest("E2E.Add", addRequest(message->getDouble("x"), 10), 10.0);
                sum.set_value(reply ? reply->getDouble("sum") : -1);
            });
        connection.flush();
        auto trigger_message = Message::create();
        trigger_message->addDouble("x", 5);
        connection.sendMessage(trigger_message, "E2E.Trigger");
        auto result = sum.get_future();
        if (mode == PROCESS_MESSAGE_QUEUE) {
            ASSERT_TRUE(mmtest::waitUntil(kDeadline, [&] {
                connection.processMessageQueue(100);
                return result.wait_for(0s) == std::future_status::ready;
            }));
        }
        ASSERT_EQ(result.wait_for(kDeadline), std::future_status::ready);
        EXPECT_EQ(result.get(), 15.0) << "mode " << mode;
    }
}

TEST_F(EndToEnd, UnsubscribingStopsCallbacksAndWaitsForARunningOne) {
    Connection subscriber(params("sub"));
    Connection publisher(params("pub"));
    std::atomic<bool> inside{false};
    std::atomic<bool> release{false};
    std::atomic<int> calls{0};
    auto subscription = subscriber.subscribe("E2E.U", [&](Connection&, const std::string&, const std::string&, MessagePtr, void*) {
        ++calls;
        inside = true;
        while (!release) std::this_thread::sleep_for(1ms);
        inside = false;
    });
    subscriber.flush();
    publisher.sendMessage(seq(1), "E2E.U");
    ASSERT_TRUE(mmtest::waitUntil(kDeadline, [&] { return inside.load(); }));
    std::thread releaser([&] {
        std::this_thread::sleep_for(100ms);
        release = true;
    });
    subscription.reset();  // must wait for the running callback
    EXPECT_FALSE(inside.load());
    releaser.join();
    publisher.sendMessage(seq(2), "E2E.U");
    publisher.flush();
    subscriber.flush();
    EXPECT_EQ(calls.load(), 1);

    // A callback may end its own subscription.
    Collector inbox;
    SubscriptionPtr self;
    std::mutex selfMutex;
    self = subscriber.subscribe("E2E.Self", [&](Connection&, const std::string&, const std::string&, MessagePtr, void*) {
        std::lock_guard<std::mutex> lock(selfMutex);
        if (self) self->unsubscribe();
        ++calls;
    });
    subscriber.flush();
    publisher.sendMessage(seq(3), "E2E.Self");
    ASSERT_TRUE(mmtest::waitUntil(kDeadline, [&] { return calls.load() == 2; }));
    publisher.sendMessage(seq(4), "E2E.Self");
    publisher.flush();
    subscriber.flush();
    EXPECT_EQ(calls.load(), 2);
}

TEST_F(EndToEnd, ExceptionsFromCallbacksAreLoggedAndDispatchGoesOn) {
    std::mutex mutex;
    std::vector<std::string> errors;
    Logger::registerCallback([&](Logger::LogLevel level, const std::string& line) {
        if (level >= Logger::LOG_LEVEL_ERROR) {
            std::lock_guard<std::mutex> lock(mutex);
            errors.push_back(line);
        }
    });
    {
        Connection connection(params());
        Collector inbox;
        auto thrower = connection.subscribe("E2E.Throw", [](Connection&, const std::string&, const std::string&,
                                                            MessagePtr message, void*) {
            if (message->getSignedInt32("seq") == 1) throw std::runtime_error("boom");
        });
        auto after = connection.subscribe("E2E.Throw", inbox.callback());
        connection.flush();
        connection.sendMessage(seq(1), "E2E.Throw");
        connection.sendMessage(seq(2), "E2E.Throw");
        ASSERT_TRUE(inbox.waitFor(2));
    }
    Logger::registerCallback(nullptr);
    std::lock_guard<std::mutex> lock(mutex);
    ASSERT_FALSE(errors.empty());
    EXPECT_NE(errors[0].find("E2E.Throw threw: boom"), std::string::npos) << errors[0];
}

TEST_F(EndToEnd, BadSubjectsClosedConnectionsAndUnreachableGatewaysAreTypedErrors) {
    Connection connection(params());
    EXPECT_THROW(connection.sendMessage(Message::create(), "A..B"), InvalidSubjectException);
    EXPECT_THROW(connection.sendMessage(Message::create(), "A.*"), InvalidSubjectException);
    EXPECT_THROW((void)connection.subscribe("A.>.B", [](Connection&, const std::string&, const std::string&, MessagePtr, void*) {}),
                 InvalidSubjectException);
    EXPECT_THROW(connection.sendMessage(MessagePtr(), "A.B"), InvalidArgumentException);
    // The texts of docs/protocol.md's "Error texts" table, as every language gives them.
    try {
        connection.sendMessage(Message::create(), "A..B");
        ADD_FAILURE() << "no exception";
    } catch (const InvalidSubjectException& error) {
        EXPECT_STREQ(error.what(), "invalid subject `A..B`: empty token at position 2");
    }
    try {
        (void)connection.subscribe("A.>.B", [](Connection&, const std::string&, const std::string&, MessagePtr, void*) {});
        ADD_FAILURE() << "no exception";
    } catch (const InvalidSubjectException& error) {
        EXPECT_STREQ(error.what(), "invalid pattern `A.>.B`: `>` at token 2 is not the last token (`>`)");
    }
    connection.close();
    EXPECT_FALSE(connection.isConnected());
    EXPECT_THROW(connection.sendMessage(Message::create(), "A.B"), ClosedException);
    EXPECT_THROW(connection.flush(), ClosedException);

    ConnectionParams nowhere = params();
    nowhere.GatewayPort = mmtest::freePort();
    EXPECT_THROW(Connection{nowhere}, ConnectionException);
    nowhere.Service = "bad service";
    EXPECT_THROW(Connection{nowhere}, InvalidSubjectException);
    nowhere.GatewayPort = 70000;
    EXPECT_THROW(Connection{nowhere}, InvalidArgumentException);
}

TEST_F(EndToEnd, NotificationsReportConnectAndClose) {
    std::mutex mutex;
    std::vector<Notification::Type> seen;
    ConnectionParams p = params();
    p.NotificationCallback = [&](const Notification& notification) {
        std::lock_guard<std::mutex> lock(mutex);
        seen.push_back(notification.type);
    };
    {
        Connection connection(p);
        EXPECT_TRUE(connection.isConnected());
    }
    ASSERT_TRUE(mmtest::waitUntil(kDeadline, [&] {
        std::lock_guard<std::mutex> lock(mutex);
        return !seen.empty() && seen.back() == Notification::CLOSED;
    }));
    std::lock_guard<std::mutex> lock(mutex);
    EXPECT_EQ(seen.front(), Notification::CONNECTED);
}

TEST(EndToEndReconnect, SubscriptionsAreRenewedAfterTheGatewayComesBack) {
    auto gateway = std::make_unique<mmtest::Gateway>();
    const int port = gateway->port();
    const std::string service = mmtest::uniqueService("RECON");
    std::mutex mutex;
    std::vector<Notification> notifications;
    auto has = [&](Notification::Type type) {
        std::lock_guard<std::mutex> lock(mutex);
        for (const auto& n : notifications) {
            if (n.type == type) return true;
        }
        return false;
    };
    ConnectionParams p = mmtest::params(port, service, "reconnecting");
    p.NotificationCallback = [&](const Notification& notification) {
        std::lock_guard<std::mutex> lock(mutex);
        notifications.push_back(notification);
    };
    Connection connection(p);
    Collector inbox;
    auto subscription = connection.subscribe("RECON.>", inbox.callback());
    connection.flush();

    gateway->kill();
    ASSERT_TRUE(mmtest::waitUntil(kDeadline, [&] { return has(Notification::DISCONNECTED); }));
    EXPECT_FALSE(connection.isConnected());
    // Published while down: buffered and replayed after the reconnect.
    connection.sendMessage(seq(1), "RECON.buffered");
    gateway = std::make_unique<mmtest::Gateway>(port);
    ASSERT_TRUE(mmtest::waitUntil(kDeadline, [&] { return has(Notification::RECONNECTED); }));
    EXPECT_TRUE(has(Notification::RECONNECTING));
    connection.flush();
    Connection publisher(mmtest::params(port, service, "publisher"));
    publisher.sendMessage(seq(2), "RECON.after");
    ASSERT_TRUE(inbox.waitFor(2));
    std::set<std::string> subjects;
    for (const auto& delivery : inbox.all()) subjects.insert(delivery.subject);
    EXPECT_EQ(subjects, (std::set<std::string>{"RECON.buffered", "RECON.after"}));
    std::lock_guard<std::mutex> lock(mutex);
    for (const auto& n : notifications) {
        if (n.type == Notification::RECONNECTED) EXPECT_EQ(n.count, 1u) << n.text;
    }
}

TEST(EndToEndAsyncConnect, TheConstructorReturnsAtOnceAndCallsWaitForTheConnection) {
    const int port = mmtest::freePort();
    const std::string service = mmtest::uniqueService("ASYNC");
    std::atomic<int> failures{0};
    std::atomic<bool> connected{false};
    ConnectionParams p = mmtest::params(port, service, "async");
    p.ConnectAsynchronously = true;
    p.ConnectTimeout = 30s;
    p.NotificationCallback = [&](const Notification& notification) {
        if (notification.type == Notification::CONNECT_FAILED) ++failures;
        if (notification.type == Notification::CONNECTED) connected = true;
    };
    Connection connection(p);  // nothing listens on the port yet
    EXPECT_FALSE(connection.isConnected());
    ASSERT_TRUE(mmtest::waitUntil(kDeadline, [&] { return failures.load() >= 1; }));
    mmtest::Gateway gateway(port);
    Collector inbox;
    auto subscription = connection.subscribe("ASYNC.x", inbox.callback());  // waits for the connection
    EXPECT_TRUE(connected.load() || mmtest::waitUntil(kDeadline, [&] { return connected.load(); }));
    connection.flush();
    connection.sendMessage(seq(1), "ASYNC.x");
    ASSERT_TRUE(inbox.waitFor(1));

    // Closed before it ever connected: calls fail instead of waiting.
    ConnectionParams never = mmtest::params(mmtest::freePort(), service, "never");
    never.ConnectAsynchronously = true;
    Connection closed(never);
    closed.close();
    EXPECT_THROW(closed.flush(), ClosedException);
}
