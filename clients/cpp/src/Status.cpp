#include "Status.h"

#include "messagingmesh/Exceptions.h"

namespace MessagingMesh {
namespace detail {

void throwStatus(mm_status status) {
    const std::string what = mm_last_error();
    const int code = static_cast<int>(status);
    switch (status) {
        case MM_STATUS_TIMEOUT: throw TimeoutException(code, what);
        case MM_STATUS_NO_RESPONDERS: throw NoRespondersException(code, what);
        case MM_STATUS_CONNECT: throw ConnectionException(code, what);
        case MM_STATUS_DISCONNECTED: throw DisconnectedException(code, what);
        case MM_STATUS_CLOSED: throw ClosedException(code, what);
        case MM_STATUS_INVALID_SUBJECT: throw InvalidSubjectException(code, what);
        case MM_STATUS_FIELD_NOT_FOUND: throw FieldNotFoundException(code, what);
        case MM_STATUS_WRONG_TYPE: throw WrongFieldTypeException(code, what);
        case MM_STATUS_DECODE: throw DecodeException(code, what);
        case MM_STATUS_ENCODE:
        case MM_STATUS_TOO_LARGE: throw EncodeException(code, what);
        case MM_STATUS_RECONNECT_BUFFER_FULL: throw ReconnectBufferFullException(code, what);
        case MM_STATUS_NOT_QUEUE_MODE: throw NotQueueModeException(code, what);
        case MM_STATUS_NULL_ARGUMENT:
        case MM_STATUS_INVALID_HANDLE:
        case MM_STATUS_INVALID_ARGUMENT:
        case MM_STATUS_NO_REPLY_SUBJECT: throw InvalidArgumentException(code, what);
        default: throw Exception(code, what);
    }
}

}  // namespace detail
}  // namespace MessagingMesh
