// Subscription: a live subscription, ended when the last SubscriptionPtr is released.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>

#include "Types.h"

struct mm_subscription;

namespace MessagingMesh {

namespace detail {
struct SubscriptionAccess;
}

/// A live subscription. Releasing the last SubscriptionPtr (or calling unsubscribe()) ends it:
/// when that returns, its callback is not running on another thread and will not run again (from
/// inside its own callback, the running call finishes normally). So the objects a callback uses
/// may be destroyed right after the subscription. Renewed automatically after a reconnect.
class Subscription {
public:
    ~Subscription();
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

    /// The subject pattern subscribed to.
    const std::string& getSubject() const noexcept { return subject_; }
    /// The tag given to subscribe().
    void* getTag() const noexcept { return tag_; }
    /// The subscription's id at the gateway.
    uint32_t getId() const noexcept { return id_; }
    /// Ends the subscription (idempotent).
    void unsubscribe();
    /// Messages handed to the callback so far.
    uint64_t getDeliveredCount() const;
    /// Messages dropped because the subscription passed its pending limit.
    uint64_t getDroppedCount() const;

private:
    friend struct detail::SubscriptionAccess;
    Subscription(mm_subscription* handle, std::string subject, void* tag, uint32_t id);
    mutable std::mutex mutex_;
    mm_subscription* handle_;
    std::string subject_;
    void* tag_;
    uint32_t id_;
};

}  // namespace MessagingMesh
