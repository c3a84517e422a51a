// ConnectionParams: how to open a connection, and the notifications it sends.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace MessagingMesh {

/// Where subscription callbacks run.
enum MessageDispatch {
    /// On one library thread per connection, in arrival order.
    CALLBACK_ON_MESSAGING_MESH_THREAD = 0,
    /// On the thread that calls Connection::processMessageQueue.
    PROCESS_MESSAGE_QUEUE = 1,
};

/// Something that happened to a connection, for the NotificationCallback.
struct Notification {
    enum Type {
        CONNECTED,            ///< connected (with ConnectAsynchronously: in the background)
        CONNECT_FAILED,       ///< ConnectAsynchronously: an attempt failed; another follows
        DISCONNECTED,         ///< the gateway was lost; requests in flight failed
        RECONNECTING,         ///< a redial is scheduled (attempt, delay)
        RECONNECT_FAILED,     ///< a redial failed (attempt)
        RECONNECTED,          ///< back: subscriptions renewed (count), buffered messages sent
        CLOSED,               ///< closed for good
        GATEWAY_ERROR,        ///< the gateway reported an error (code)
        MESSAGES_DROPPED,     ///< a subscription passed its pending limit (subscriptionId, count)
        UNDECODABLE_MESSAGE,  ///< a delivered message did not decode and was dropped
        CALLBACK_FAILED,      ///< a subscription callback failed
        OTHER,
    };
    Type type = OTHER;
    /// A description for people.
    std::string text;
    uint32_t attempt = 0;
    uint32_t subscriptionId = 0;
    uint64_t count = 0;
    std::chrono::milliseconds delay{0};
    /// The gateway's error code, e.g. "INVALID_SUBJECT" (GATEWAY_ERROR).
    std::string code;
};

/// Told about every Notification of a connection, on a library thread (never the one that reads
/// the socket, so it may take its time). Exceptions it throws are logged and dropped.
using NotificationCallback = std::function<void(const Notification& notification)>;

/// How to open a connection. Everything has a default; GatewayHost, GatewayPort and Service
/// are what is usually set.
struct ConnectionParams {
    std::string GatewayHost = "127.0.0.1";
    int GatewayPort = 5050;
    /// The service: the group of clients that see each other's messages.
    std::string Service = "DEFAULT";
    /// The name the gateway shows for this client (default: the program's name).
    std::string ClientID;
    ::MessagingMesh::MessageDispatch MessageDispatch = CALLBACK_ON_MESSAGING_MESH_THREAD;
    ::MessagingMesh::NotificationCallback NotificationCallback;
    /// Return from the Connection constructor at once and connect in the background, retrying
    /// (with the reconnect delays) until it succeeds. Calls that need the connection wait for
    /// it, up to ConnectTimeout.
    bool ConnectAsynchronously = false;

    /// How long connecting may take (each attempt, and each redial).
    std::chrono::milliseconds ConnectTimeout{30000};
    /// Heartbeat interval announced to the gateway (0: none).
    std::chrono::milliseconds Heartbeat{5000};
    /// Reconnect after losing the gateway (subscriptions renewed, messages sent meanwhile
    /// buffered up to ReconnectBufferBytes and replayed).
    bool Reconnect = true;
    std::chrono::milliseconds ReconnectInitialDelay{100};
    std::chrono::milliseconds ReconnectMaxDelay{2000};
    /// Give up after this many failed redials (0: never).
    uint32_t ReconnectMaxAttempts = 0;
    std::size_t ReconnectBufferBytes = 8u << 20;
    /// Per-subscription bound on messages waiting for their callback; more are dropped (and
    /// reported as MESSAGES_DROPPED).
    std::size_t PendingMessagesLimit = 65536;
    std::size_t PendingBytesLimit = 64u << 20;
    /// How long a blocking request or flush busy-waits for its answer before sleeping.
    std::chrono::microseconds RequestSpin{200};
};

}  // namespace MessagingMesh
