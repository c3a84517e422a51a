// Test support: a subscription callback that records what it receives.
#pragma once

#include <condition_variable>
#include <ostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <messagingmesh/MessagingMesh.h>

#include "Process.h"

namespace mmtest {

/// One delivery.
struct Delivery {
    std::string subject;
    std::string replySubject;
    MessagingMesh::MessagePtr message;
    void* tag = nullptr;
    std::thread::id thread;
};

/// Records deliveries; waitFor() blocks until enough arrived.
class Collector {
public:
    MessagingMesh::SubscriptionCallback callback() {
        return [this](MessagingMesh::Connection&, const std::string& subject, const std::string& reply,
                      MessagingMesh::MessagePtr message, void* tag) {
            std::lock_guard<std::mutex> lock(mutex_);
            deliveries_.push_back(Delivery{subject, reply, std::move(message), tag, std::this_thread::get_id()});
            changed_.notify_all();
        };
    }

    bool waitFor(std::size_t count, std::chrono::milliseconds timeout = kDeadline) {
        std::unique_lock<std::mutex> lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return deliveries_.size() >= count; });
    }

    std::vector<Delivery> all() {
        std::lock_guard<std::mutex> lock(mutex_);
        return deliveries_;
    }

    std::size_t count() {
        std::lock_guard<std::mutex> lock(mutex_);
        return deliveries_.size();
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<Delivery> deliveries_;
};

/// The message the interop tests send each way: every type, a nested message, a duplicate name
/// (the same as InteropPeer.AllTypes in C#).
inline MessagingMesh::MessagePtr allTypes() {
    static const uint8_t blob[] = {0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff};
    auto meta = MessagingMesh::Message::create();
    meta->addUnsignedInt32("seq", 7).addString("empty", "");
    auto message = MessagingMesh::Message::create();
    message->addString("text", "Z\u00fcrich \"quoted\" \U0001F600 \u65e5\u672c")
        .addSignedInt32("i32", -42)
        .addUnsignedInt32("u32", 4000000000u)
        .addSignedInt64("i64", -9000000000000000000LL)
        .addUnsignedInt64("u64", 18446744073709551615ULL)
        .addDouble("pi", 3.141592653589793)
        .addDouble("negzero", -0.0)
        .addBool("yes", true)
        .addBool("no", false)
        .addBLOB("blob", blob, sizeof blob)
        .addMessage("meta", meta)
        .addString("tag", "a")
        .addString("tag", "b");
    return message;
}

/// Connection parameters for a test gateway.
inline MessagingMesh::ConnectionParams params(int port, const std::string& service, const std::string& client = "cpp-test") {
    MessagingMesh::ConnectionParams params;
    params.GatewayHost = "127.0.0.1";
    params.GatewayPort = port;
    params.Service = service;
    params.ClientID = client;
    params.ReconnectInitialDelay = std::chrono::milliseconds(50);
    params.ReconnectMaxDelay = std::chrono::milliseconds(500);
    return params;
}

/// A service name no other test uses.
std::string uniqueService(const std::string& prefix);

}  // namespace mmtest

namespace MessagingMesh {
/// How GoogleTest prints a Message in a failure (instead of as a container of fields).
inline void PrintTo(const Message& message, std::ostream* out) { *out << message.toString(); }
}  // namespace MessagingMesh
