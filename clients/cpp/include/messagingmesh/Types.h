// Forward declarations and the shared-pointer types every part of the API uses.
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace MessagingMesh {

class BLOB;
class Connection;
class Field;
class Message;
class Subscription;

/// A shared Message. Messages passed to callbacks and returned by requests are MessagePtrs.
using MessagePtr = std::shared_ptr<Message>;
/// A shared Field (a copy of one field of a message).
using FieldPtr = std::shared_ptr<Field>;
/// A shared BLOB.
using BLOBPtr = std::shared_ptr<BLOB>;
/// A live subscription: releasing the last SubscriptionPtr unsubscribes.
using SubscriptionPtr = std::shared_ptr<Subscription>;

/// Called for every message delivered to a subscription: the connection it arrived on, its
/// subject, its reply subject ("" when none), the message, and the tag given to subscribe().
using SubscriptionCallback = std::function<void(Connection& connection, const std::string& subject,
                                                const std::string& replySubject, MessagePtr message,
                                                void* tag)>;

}  // namespace MessagingMesh
