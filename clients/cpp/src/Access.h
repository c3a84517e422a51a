// Internal: what the library's parts need from each other's private members.
#pragma once

#include <cstdint>
#include <string>

#include <messagingmesh/messaging_mesh.h>
#include "messagingmesh/Connection.h"
#include "messagingmesh/Message.h"
#include "messagingmesh/Subscription.h"

namespace MessagingMesh {
namespace detail {

struct MessageAccess {
    /// A message over a delivered message (taking ownership of `received`; decoded when read).
    static MessagePtr fromReceived(mm_received* received);
    /// A message over an owned C message (taking ownership).
    static MessagePtr fromOwned(mm_message* message);
    /// The C message to read.
    static const mm_message* handle(const Message& message) { return message.read(); }
};

struct SubscriptionAccess {
    static SubscriptionPtr make(mm_subscription* handle, std::string subject, void* tag, uint32_t id) {
        return SubscriptionPtr(new Subscription(handle, std::move(subject), tag, id));
    }
};

}  // namespace detail
}  // namespace MessagingMesh
