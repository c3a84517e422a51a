// Connection: one connection to a Messaging Mesh gateway.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "ConnectionParams.h"
#include "Message.h"
#include "Subscription.h"
#include "Types.h"

namespace MessagingMesh {

namespace detail {
struct ConnectionCore;
struct ConnectionAccess;
}  // namespace detail

/// What processMessageQueue did.
struct MessageQueueInfo {
    /// Callbacks run.
    int MessagesProcessed = 0;
    /// Messages still waiting.
    int QueueSize = 0;
};

/// A connection's counters since it was opened.
struct ConnectionStats {
    uint64_t FramesOut = 0;
    uint64_t BytesOut = 0;
    uint64_t WriteCalls = 0;
    uint64_t FramesIn = 0;
    uint64_t BytesIn = 0;
    uint64_t MessagesDropped = 0;
    uint64_t Reconnects = 0;
};

/// A connection to a gateway. Thread-safe: any thread may publish, subscribe and request at
/// once, including from inside a subscription callback. Destroying it closes the connection:
/// queued messages are written, requests in flight fail, subscriptions end.
///
///     MessagingMesh::Connection connection(params);
///     auto sub = connection.subscribe("PRICES.>", [](auto&, auto& subject, auto&, auto message, void*) {
///         std::cout << subject << " " << *message << "\n";
///     });
///     auto message = MessagingMesh::Message::create();
///     message->addString("sym", "IBM").addDouble("px", 123.4);
///     connection.sendMessage(message, "PRICES.IBM");
class Connection {
public:
    /// Connects and completes the handshake; throws ConnectionException (or
    /// InvalidSubjectException for a bad service name). With ConnectAsynchronously, returns at
    /// once and connects in the background.
    explicit Connection(const ConnectionParams& params);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    /// The library's version, e.g. "0.1.0".
    static std::string getVersion();

    /// A new unique inbox subject, for replies the application collects itself.
    std::string createInbox();

    /// Publishes `message` on `subject`, with a reply subject unless it is empty. Returns once
    /// the message is queued (it waits only when the output is at its high-water mark).
    void sendMessage(const MessagePtr& message, const std::string& subject, const std::string& replySubject = "");
    void sendMessage(const Message& message, const std::string& subject, const std::string& replySubject = "");

    /// Answers a request: publishes `reply` on the request's reply subject (throws
    /// InvalidArgumentException when it is empty: the message was not a request).
    void sendReply(const MessagePtr& reply, const std::string& replySubject);

    /// Sends a request and waits for the first reply. Returns nullptr when none comes within the
    /// timeout, or when the gateway says nobody listens; throws for other failures
    /// (DisconnectedException, ClosedException, InvalidSubjectException, …).
    MessagePtr sendRequest(const std::string& subject, const MessagePtr& message, double timeoutSeconds);
    template <class Rep, class Period>
    MessagePtr sendRequest(const std::string& subject, const MessagePtr& message,
                           std::chrono::duration<Rep, Period> timeout) {
        return requestOrNull(subject, message, std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
    }

    /// Sends a request and returns its reply; throws TimeoutException or NoRespondersException
    /// (or another Exception) instead of returning nullptr.
    MessagePtr request(const std::string& subject, const MessagePtr& message, std::chrono::milliseconds timeout);

    /// Subscribes to `subject` (wildcards `*` and `>` allowed). `callback` runs for every
    /// message, on the library's thread or in processMessageQueue (ConnectionParams::MessageDispatch);
    /// it may use the connection (publish, subscribe, even sendRequest). Exceptions it throws are
    /// logged and dropped. Keep the returned pointer: releasing it unsubscribes. Use flush() to
    /// know that the gateway has the subscription.
    [[nodiscard]] SubscriptionPtr subscribe(const std::string& subject, SubscriptionCallback callback,
                                            void* tag = nullptr);

    /// PROCESS_MESSAGE_QUEUE mode: waits up to `millisecondsTimeout` (negative: no limit) for a
    /// message, then runs the callbacks of the waiting messages on this thread, at most
    /// `maxMessages` (negative: no limit; 0: none, only report the queue size). Returns early
    /// after wakeUp(). Throws NotQueueModeException in the other mode.
    MessageQueueInfo processMessageQueue(int millisecondsTimeout, int maxMessages = -1);
    template <class Rep, class Period>
    MessageQueueInfo processMessageQueue(std::chrono::duration<Rep, Period> timeout, int maxMessages = -1) {
        return processMessageQueue(
            static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()), maxMessages);
    }
    /// Makes a waiting processMessageQueue (or the next one) return at once.
    void wakeUp();

    /// Waits until the gateway has processed everything sent before, subscriptions included;
    /// throws TimeoutException.
    void flush(std::chrono::milliseconds timeout = std::chrono::seconds(10));
    /// Like flush, and also until every mesh link of the gateway has confirmed this connection's
    /// subscriptions: after it, a publish anywhere in the mesh reaches them.
    void flushMesh(std::chrono::milliseconds timeout = std::chrono::seconds(10));

    /// Whether the connection is up (false while reconnecting, connecting asynchronously, or
    /// closed).
    bool isConnected() const;
    /// Messages waiting in the dispatch queue.
    std::size_t getQueueSize() const;
    /// The connection's counters.
    ConnectionStats getStats() const;
    /// Closes the connection now (the destructor does it otherwise). Idempotent.
    void close();

private:
    friend struct detail::ConnectionAccess;
    /// A view of a connection for callbacks: it does not own or close it.
    explicit Connection(detail::ConnectionCore* core) noexcept;
    MessagePtr requestOrNull(const std::string& subject, const MessagePtr& message, std::chrono::milliseconds timeout);

    std::shared_ptr<detail::ConnectionCore> owned_;
    detail::ConnectionCore* core_;
};

}  // namespace MessagingMesh
