// Frames: a header and a message, as they travel on the wire. Connections do this themselves;
// this is for tools, bridges and tests that handle raw frames.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "Message.h"

namespace MessagingMesh {
namespace Wire {

/// The action byte of a frame (SPEC §5).
enum class Action : uint8_t {
    NONE = 0,
    CONNECT = 1,
    DISCONNECT = 2,
    ACK = 3,
    SUBSCRIBE = 4,
    UNSUBSCRIBE = 5,
    SEND_MESSAGE = 6,
    CONNECT_MESH_PEER = 7,
    PING = 8,
    PONG = 9,
    ERROR = 10,
    NO_RESPONDERS = 11,
};

/// One whole frame.
struct Frame {
    uint32_t subscriptionId = 0;
    std::string subject;
    std::string replySubject;
    Action action = Action::SEND_MESSAGE;
    /// The body (null encodes as an empty message).
    MessagePtr body;

    /// The frame's bytes: length prefix, header, body.
    std::vector<uint8_t> serialize() const;
    /// Decodes exactly one whole frame; throws DecodeException (also when only the body is bad).
    static Frame deserialize(const void* data, std::size_t length);
    static Frame deserialize(const std::vector<uint8_t>& bytes) { return deserialize(bytes.data(), bytes.size()); }
};

}  // namespace Wire
}  // namespace MessagingMesh
