#include "messagingmesh/Connection.h"

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <limits>
#include <thread>

#include "Access.h"
#include "Status.h"
#include "messagingmesh/Exceptions.h"
#include "messagingmesh/Logger.h"

namespace MessagingMesh {

using detail::check;

namespace detail {

/// Lets the Connection's destructor wait until the notification callback has been told CLOSED,
/// so that the callback never runs after the Connection is gone.
struct ClosedSignal {
    std::mutex mutex;
    std::condition_variable changed;
    bool delivered = false;
    /// The thread that delivers notifications (a destructor called there must not wait).
    std::thread::id notifier;
};

/// What a Connection and the views given to callbacks share. Kept alive by the Connection and
/// by every subscription's callback context, so a callback still running after the Connection
/// is destroyed uses a closed connection, never freed memory.
struct ConnectionCore : std::enable_shared_from_this<ConnectionCore> {
    /// Set once, when connected; freed with the core.
    std::atomic<mm_connection*> handle{nullptr};
    std::mutex mutex;
    std::condition_variable settled;
    /// close() was called.
    bool closed = false;
    std::chrono::milliseconds connectTimeout{30000};
    /// Set when the application gave a NotificationCallback.
    std::shared_ptr<ClosedSignal> closedSignal;

    ~ConnectionCore() { mm_connection_free(handle.load()); }

    /// The connection, waiting for a background connect if need be.
    mm_connection* get() {
        mm_connection* connection = handle.load(std::memory_order_acquire);
        return connection != nullptr ? connection : waitForConnection();
    }

    mm_connection* waitForConnection() {
        std::unique_lock<std::mutex> lock(mutex);
        const bool ready = settled.wait_for(lock, connectTimeout, [this] { return handle.load() != nullptr || closed; });
        mm_connection* connection = handle.load();
        if (connection != nullptr) {
            return connection;
        }
        if (closed) {
            throw ClosedException(MM_STATUS_CLOSED, "the connection is closed");
        }
        (void)ready;
        throw ConnectionException(MM_STATUS_CONNECT, "not connected: the background connection did not succeed within " +
                                                         std::to_string(connectTimeout.count()) + " ms");
    }
};

/// The notification callback's state, owned by the C library (freed with the connection).
struct NotifyContext {
    NotificationCallback callback;
    std::shared_ptr<ClosedSignal> closed;
};

/// A subscription callback's state, owned by the C library (freed after the last call).
struct SubscriptionContext;

struct ConnectionAccess {
    static void onMessage(void* userData, mm_received* received, const mm_delivery* delivery) noexcept;
    /// A view of `core` for callbacks (owns nothing).
    static Connection view(ConnectionCore* core) noexcept { return Connection(core); }
};

/// What a subscription's callback needs, made once per subscription: calls of one subscription
/// never overlap, so the view and the empty reply subject are shared by all of them, and a
/// message on the subscribed subject itself (no wildcard) reuses `subject`.
struct SubscriptionContext {
    SubscriptionContext(SubscriptionCallback callback, void* tag, std::shared_ptr<ConnectionCore> core,
                        std::string subject)
        : callback(std::move(callback)),
          tag(tag),
          core(std::move(core)),
          subject(std::move(subject)),
          view(ConnectionAccess::view(this->core.get())) {}
    SubscriptionCallback callback;
    void* tag;
    std::shared_ptr<ConnectionCore> core;
    std::string subject;
    Connection view;
    const std::string noReply;
};

}  // namespace detail

namespace {

using detail::ConnectionCore;
using detail::NotifyContext;
using detail::SubscriptionContext;

uint64_t milliseconds(std::chrono::milliseconds duration) {
    return duration.count() <= 0 ? 0 : static_cast<uint64_t>(duration.count());
}

Notification::Type notificationType(mm_notification_kind kind) {
    switch (kind) {
        case MM_NOTIFICATION_KIND_CONNECTED: return Notification::CONNECTED;
        case MM_NOTIFICATION_KIND_DISCONNECTED: return Notification::DISCONNECTED;
        case MM_NOTIFICATION_KIND_RECONNECTING: return Notification::RECONNECTING;
        case MM_NOTIFICATION_KIND_RECONNECT_FAILED: return Notification::RECONNECT_FAILED;
        case MM_NOTIFICATION_KIND_RECONNECTED: return Notification::RECONNECTED;
        case MM_NOTIFICATION_KIND_CLOSED: return Notification::CLOSED;
        case MM_NOTIFICATION_KIND_GATEWAY_ERROR: return Notification::GATEWAY_ERROR;
        case MM_NOTIFICATION_KIND_MESSAGES_DROPPED: return Notification::MESSAGES_DROPPED;
        case MM_NOTIFICATION_KIND_UNDECODABLE_MESSAGE: return Notification::UNDECODABLE_MESSAGE;
        case MM_NOTIFICATION_KIND_CALLBACK_FAILED: return Notification::CALLBACK_FAILED;
        default: return Notification::OTHER;
    }
}

void deliver(const NotificationCallback& callback, const Notification& notification) {
    if (!callback) {
        return;
    }
    try {
        callback(notification);
    } catch (const std::exception& error) {
        Logger::log(Logger::LOG_LEVEL_ERROR, std::string("the notification callback threw: ") + error.what());
    } catch (...) {
        Logger::log(Logger::LOG_LEVEL_ERROR, "the notification callback threw");
    }
}

extern "C" void onNotification(void* userData, const mm_notification* notification) {
    auto* context = static_cast<NotifyContext*>(userData);
    {
        std::lock_guard<std::mutex> lock(context->closed->mutex);
        context->closed->notifier = std::this_thread::get_id();
    }
    try {
        Notification converted;
        converted.type = notificationType(notification->kind);
        converted.text = detail::text(notification->text, notification->text_len);
        converted.attempt = notification->attempt;
        converted.subscriptionId = notification->subscription_id;
        converted.count = notification->count;
        converted.delay = std::chrono::milliseconds(notification->delay_ms);
        converted.code = detail::text(notification->code, notification->code_len);
        deliver(context->callback, converted);
    } catch (...) {
        // Out of memory while copying the notification: drop it.
    }
    if (notification->kind == MM_NOTIFICATION_KIND_CLOSED) {
        std::lock_guard<std::mutex> lock(context->closed->mutex);
        context->closed->delivered = true;
        context->closed->changed.notify_all();
    }
}

extern "C" void freeNotifyContext(void* userData) { delete static_cast<NotifyContext*>(userData); }

extern "C" void onLog(void*, mm_log_level level, const char* line, size_t length) {
    Logger::LogLevel converted = Logger::LOG_LEVEL_DEBUG;
    switch (level) {
        case MM_LOG_LEVEL_DEBUG: converted = Logger::LOG_LEVEL_DEBUG; break;
        case MM_LOG_LEVEL_INFO: converted = Logger::LOG_LEVEL_INFO; break;
        case MM_LOG_LEVEL_WARN: converted = Logger::LOG_LEVEL_WARN; break;
        case MM_LOG_LEVEL_ERROR: converted = Logger::LOG_LEVEL_ERROR; break;
    }
    try {
        Logger::log(converted, detail::text(line, length));
    } catch (...) {
    }
}

extern "C" void freeSubscriptionContext(void* userData) { delete static_cast<SubscriptionContext*>(userData); }

extern "C" void onMessage(void* userData, mm_received* received, const mm_delivery* delivery) {
    detail::ConnectionAccess::onMessage(userData, received, delivery);
}

struct ParamsDeleter {
    void operator()(mm_connection_params* params) const noexcept { mm_connection_params_free(params); }
};
using ParamsHandle = std::unique_ptr<mm_connection_params, ParamsDeleter>;

/// `host:port`, with brackets around an IPv6 address.
std::string gatewayAddress(const ConnectionParams& params) {
    if (params.GatewayPort <= 0 || params.GatewayPort > 65535) {
        throw InvalidArgumentException(MM_STATUS_INVALID_ARGUMENT,
                                       "GatewayPort " + std::to_string(params.GatewayPort) + " is not a TCP port");
    }
    const std::string& host = params.GatewayHost;
    const bool ipv6 = host.find(':') != std::string::npos && host.front() != '[';
    return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(params.GatewayPort);
}

ParamsHandle makeParams(const ConnectionParams& params, const std::shared_ptr<detail::ClosedSignal>& closed) {
    const std::string address = gatewayAddress(params);
    mm_connection_params* raw = nullptr;
    check(mm_connection_params_new(address.data(), address.size(), params.Service.data(), params.Service.size(), &raw));
    ParamsHandle handle(raw);
    if (!params.ClientID.empty()) {
        check(mm_connection_params_set_client_name(raw, params.ClientID.data(), params.ClientID.size()));
    }
    check(mm_connection_params_set_dispatch_mode(
        raw, params.MessageDispatch == PROCESS_MESSAGE_QUEUE ? MM_DISPATCH_MODE_QUEUE : MM_DISPATCH_MODE_CALLBACKS));
    check(mm_connection_params_set_connect_timeout_ms(raw, milliseconds(params.ConnectTimeout)));
    check(mm_connection_params_set_heartbeat_ms(raw, milliseconds(params.Heartbeat)));
    mm_reconnect_policy policy{};
    policy.enabled = params.Reconnect;
    policy.initial_delay_ms = milliseconds(params.ReconnectInitialDelay);
    policy.max_delay_ms = milliseconds(params.ReconnectMaxDelay);
    policy.max_attempts = params.ReconnectMaxAttempts;
    policy.buffer_bytes = params.ReconnectBufferBytes;
    check(mm_connection_params_set_reconnect(raw, &policy));
    check(mm_connection_params_set_pending_limits(raw, params.PendingMessagesLimit, params.PendingBytesLimit));
    check(mm_connection_params_set_request_spin_us(
        raw, params.RequestSpin.count() <= 0 ? 0 : static_cast<uint64_t>(params.RequestSpin.count())));
    // The library owns the context from here on, also when the call fails.
    auto* notify = new NotifyContext{params.NotificationCallback, closed};
    check(mm_connection_params_set_notification_callback(raw, onNotification, notify, freeNotifyContext));
    check(mm_connection_params_set_logger(raw, onLog, nullptr, nullptr));
    return handle;
}

/// ConnectAsynchronously: dials until it succeeds or the connection is closed.
void connectInBackground(std::shared_ptr<ConnectionCore> core, std::shared_ptr<ParamsHandle> handle,
                         ConnectionParams params) {
    std::chrono::milliseconds delay = std::max(params.ReconnectInitialDelay, std::chrono::milliseconds(1));
    for (uint32_t attempt = 1;; ++attempt) {
        mm_connection* connection = nullptr;
        const mm_status status = mm_connect(handle->get(), &connection);
        if (status == MM_STATUS_OK) {
            std::lock_guard<std::mutex> lock(core->mutex);
            if (core->closed) {
                mm_connection_free(connection);
            } else {
                core->handle.store(connection, std::memory_order_release);
            }
            core->settled.notify_all();
            return;
        }
        Notification failed;
        failed.type = Notification::CONNECT_FAILED;
        failed.text = std::string("connect attempt ") + std::to_string(attempt) + " failed: " + mm_last_error();
        failed.attempt = attempt;
        failed.delay = delay;
        Logger::log(Logger::LOG_LEVEL_WARN, failed.text);
        deliver(params.NotificationCallback, failed);
        std::unique_lock<std::mutex> lock(core->mutex);
        if (core->settled.wait_for(lock, delay, [&core] { return core->closed; })) {
            return;
        }
        delay = std::min(delay * 2, std::max(params.ReconnectMaxDelay, delay));
    }
}

}  // namespace

void detail::ConnectionAccess::onMessage(void* userData, mm_received* received, const mm_delivery* delivery) noexcept {
    auto* context = static_cast<SubscriptionContext*>(userData);
    try {
        const bool onPattern = delivery->subject_len == context->subject.size() &&
                               std::memcmp(delivery->subject, context->subject.data(), delivery->subject_len) == 0;
        const std::string ownSubject = onPattern ? std::string() : detail::text(delivery->subject, delivery->subject_len);
        const std::string ownReply =
            delivery->reply_subject_len == 0 ? std::string() : detail::text(delivery->reply_subject, delivery->reply_subject_len);
        mm_received* owned = received;
        received = nullptr;
        MessagePtr message = MessageAccess::fromReceived(owned);
        context->callback(context->view, onPattern ? context->subject : ownSubject,
                          delivery->reply_subject_len == 0 ? context->noReply : ownReply, std::move(message),
                          context->tag);
    } catch (const std::exception& error) {
        mm_received_free(received);
        Logger::log(Logger::LOG_LEVEL_ERROR,
                    "the callback of the subscription to " + context->subject + " threw: " + error.what());
    } catch (...) {
        mm_received_free(received);
        Logger::log(Logger::LOG_LEVEL_ERROR, "the callback of the subscription to " + context->subject + " threw");
    }
}

Connection::Connection(const ConnectionParams& params)
    : owned_(std::make_shared<ConnectionCore>()), core_(owned_.get()) {
    core_->connectTimeout = params.ConnectTimeout;
    auto closed = std::make_shared<detail::ClosedSignal>();
    if (params.NotificationCallback) {
        core_->closedSignal = closed;
    }
    ParamsHandle handle = makeParams(params, closed);
    if (!params.ConnectAsynchronously) {
        mm_connection* connection = nullptr;
        check(mm_connect(handle.get(), &connection));
        core_->handle.store(connection, std::memory_order_release);
        return;
    }
    std::thread(connectInBackground, owned_, std::make_shared<ParamsHandle>(std::move(handle)), params).detach();
}

Connection::Connection(detail::ConnectionCore* core) noexcept : core_(core) {}

Connection::~Connection() {
    if (!owned_) {
        return;
    }
    close();
    // The application's notification callback may use objects that die with the Connection:
    // wait until it has been told CLOSED (the last notification), unless this is its own thread.
    const std::shared_ptr<detail::ClosedSignal>& closed = core_->closedSignal;
    if (closed && core_->handle.load() != nullptr) {
        std::unique_lock<std::mutex> lock(closed->mutex);
        if (closed->notifier != std::this_thread::get_id()) {
            closed->changed.wait_for(lock, std::chrono::seconds(10), [&] { return closed->delivered; });
        }
    }
}

void Connection::close() {
    mm_connection* connection = nullptr;
    {
        std::lock_guard<std::mutex> lock(core_->mutex);
        core_->closed = true;
        connection = core_->handle.load();
    }
    core_->settled.notify_all();
    if (connection != nullptr) {
        mm_connection_close(connection);
    }
}

std::string Connection::getVersion() { return mm_version(); }

std::string Connection::createInbox() {
    char buffer[128];
    size_t length = 0;
    check(mm_connection_create_inbox(core_->get(), buffer, sizeof buffer, &length));
    return std::string(buffer, length);
}

void Connection::sendMessage(const MessagePtr& message, const std::string& subject, const std::string& replySubject) {
    if (!message) {
        throw InvalidArgumentException(MM_STATUS_NULL_ARGUMENT, "sendMessage: the message is null");
    }
    sendMessage(*message, subject, replySubject);
}

void Connection::sendMessage(const Message& message, const std::string& subject, const std::string& replySubject) {
    check(mm_connection_send(core_->get(), subject.data(), subject.size(), replySubject.data(), replySubject.size(),
                             detail::MessageAccess::handle(message)));
}

void Connection::sendReply(const MessagePtr& reply, const std::string& replySubject) {
    if (replySubject.empty()) {
        throw InvalidArgumentException(MM_STATUS_NO_REPLY_SUBJECT,
                                       "sendReply: the reply subject is empty (the message was not a request)");
    }
    sendMessage(reply, replySubject);
}

MessagePtr Connection::request(const std::string& subject, const MessagePtr& message, std::chrono::milliseconds timeout) {
    if (!message) {
        throw InvalidArgumentException(MM_STATUS_NULL_ARGUMENT, "request: the message is null");
    }
    // The library confirms its reply inbox across the mesh before the first request of each
    // session, so a reply from a responder on another gateway is not lost.
    mm_connection* connection = core_->get();
    mm_received* reply = nullptr;
    check(mm_connection_request(connection, subject.data(), subject.size(), detail::MessageAccess::handle(*message),
                                milliseconds(timeout), &reply));
    return detail::MessageAccess::fromReceived(reply);
}

MessagePtr Connection::requestOrNull(const std::string& subject, const MessagePtr& message,
                                     std::chrono::milliseconds timeout) {
    try {
        return request(subject, message, timeout);
    } catch (const TimeoutException&) {
        return nullptr;
    } catch (const NoRespondersException&) {
        return nullptr;
    }
}

MessagePtr Connection::sendRequest(const std::string& subject, const MessagePtr& message, double timeoutSeconds) {
    // NaN and negative timeouts do not wait; absurdly long ones are capped at a year.
    const double milliseconds = timeoutSeconds > 0 ? std::ceil(std::min(timeoutSeconds, 3.2e7) * 1000.0) : 0.0;
    return requestOrNull(subject, message, std::chrono::milliseconds(static_cast<int64_t>(milliseconds)));
}

SubscriptionPtr Connection::subscribe(const std::string& subject, SubscriptionCallback callback, void* tag) {
    if (!callback) {
        throw InvalidArgumentException(MM_STATUS_NULL_ARGUMENT, "subscribe: the callback is empty");
    }
    mm_connection* connection = core_->get();
    // The library owns the context from here on, also when subscribing fails.
    auto* context = new SubscriptionContext(std::move(callback), tag, core_->shared_from_this(), subject);
    mm_subscription* handle = nullptr;
    check(mm_connection_subscribe(connection, subject.data(), subject.size(), onMessage, context,
                                  freeSubscriptionContext, &handle));
    uint32_t id = 0;
    mm_subscription_id(handle, &id);
    try {
        return detail::SubscriptionAccess::make(handle, subject, tag, id);
    } catch (...) {
        mm_subscription_free(handle);
        throw;
    }
}

MessageQueueInfo Connection::processMessageQueue(int millisecondsTimeout, int maxMessages) {
    mm_connection* connection = core_->get();
    MessageQueueInfo info;
    size_t processed = 0;
    size_t remaining = 0;
    if (maxMessages == 0) {
        check(mm_connection_queued_messages(connection, &remaining));
    } else {
        check(mm_connection_process_message_queue(connection, millisecondsTimeout < 0 ? -1 : millisecondsTimeout,
                                                  maxMessages < 0 ? 0 : static_cast<size_t>(maxMessages), &processed,
                                                  &remaining));
    }
    constexpr size_t most = static_cast<size_t>(std::numeric_limits<int>::max());
    info.MessagesProcessed = static_cast<int>(std::min(processed, most));
    info.QueueSize = static_cast<int>(std::min(remaining, most));
    return info;
}

void Connection::wakeUp() { check(mm_connection_wake_up(core_->get())); }

void Connection::flush(std::chrono::milliseconds timeout) {
    check(mm_connection_flush(core_->get(), milliseconds(timeout), false));
}

void Connection::flushMesh(std::chrono::milliseconds timeout) {
    check(mm_connection_flush(core_->get(), milliseconds(timeout), true));
}

bool Connection::isConnected() const {
    mm_connection* connection = core_->handle.load(std::memory_order_acquire);
    mm_connection_status status = MM_CONNECTION_STATUS_CLOSED;
    return connection != nullptr && mm_connection_get_status(connection, &status) == MM_STATUS_OK &&
           status == MM_CONNECTION_STATUS_CONNECTED;
}

std::size_t Connection::getQueueSize() const {
    size_t queued = 0;
    check(mm_connection_queued_messages(core_->get(), &queued));
    return queued;
}

ConnectionStats Connection::getStats() const {
    mm_connection_stats raw{};
    check(mm_connection_get_stats(core_->get(), &raw));
    ConnectionStats stats;
    stats.FramesOut = raw.frames_out;
    stats.BytesOut = raw.bytes_out;
    stats.WriteCalls = raw.write_calls;
    stats.FramesIn = raw.frames_in;
    stats.BytesIn = raw.bytes_in;
    stats.MessagesDropped = raw.messages_dropped;
    stats.Reconnects = raw.reconnects;
    return stats;
}

}  // namespace MessagingMesh
