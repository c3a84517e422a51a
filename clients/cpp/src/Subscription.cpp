#include "messagingmesh/Subscription.h"

#include "Status.h"

namespace MessagingMesh {

Subscription::Subscription(mm_subscription* handle, std::string subject, void* tag, uint32_t id)
    : handle_(handle), subject_(std::move(subject)), tag_(tag), id_(id) {}

Subscription::~Subscription() { unsubscribe(); }

void Subscription::unsubscribe() {
    mm_subscription* handle = nullptr;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        handle = handle_;
        handle_ = nullptr;
    }
    // Outside the lock: freeing waits for a callback running on another thread, and that
    // callback may itself ask for this subscription's counters.
    mm_subscription_free(handle);
}

uint64_t Subscription::getDeliveredCount() const {
    std::lock_guard<std::mutex> lock(mutex_);
    uint64_t delivered = 0;
    if (handle_ != nullptr) {
        detail::check(mm_subscription_counts(handle_, &delivered, nullptr, nullptr));
    }
    return delivered;
}

uint64_t Subscription::getDroppedCount() const {
    std::lock_guard<std::mutex> lock(mutex_);
    uint64_t dropped = 0;
    if (handle_ != nullptr) {
        detail::check(mm_subscription_counts(handle_, nullptr, &dropped, nullptr));
    }
    return dropped;
}

}  // namespace MessagingMesh
