#include "messagingmesh/Frame.h"

#include "Access.h"
#include "Status.h"

namespace MessagingMesh {
namespace Wire {

std::vector<uint8_t> Frame::serialize() const {
    mm_frame_header header{};
    header.subscription_id = subscriptionId;
    header.subject = subject.data();
    header.subject_len = subject.size();
    header.reply_subject = replySubject.data();
    header.reply_subject_len = replySubject.size();
    header.action = static_cast<uint8_t>(action);
    const mm_message* message = body ? detail::MessageAccess::handle(*body) : nullptr;
    std::vector<uint8_t> bytes(256);
    size_t length = 0;
    mm_status status = mm_frame_encode(&header, message, bytes.data(), bytes.size(), &length);
    if (status == MM_STATUS_BUFFER_TOO_SMALL) {
        bytes.resize(length);
        status = mm_frame_encode(&header, message, bytes.data(), bytes.size(), &length);
    }
    detail::check(status);
    bytes.resize(length);
    return bytes;
}

Frame Frame::deserialize(const void* data, std::size_t length) {
    mm_frame_header header{};
    mm_message* message = nullptr;
    detail::check(mm_frame_decode(static_cast<const uint8_t*>(data), length, &header, &message));
    Frame frame;
    frame.body = detail::MessageAccess::fromOwned(message);
    frame.subscriptionId = header.subscription_id;
    frame.subject = detail::text(header.subject, header.subject_len);
    frame.replySubject = detail::text(header.reply_subject, header.reply_subject_len);
    frame.action = static_cast<Action>(header.action);
    return frame;
}

}  // namespace Wire
}  // namespace MessagingMesh
