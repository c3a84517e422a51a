// Internal: turning C API statuses into exceptions, and passing strings to the C API.
#pragma once

#include <string>

#include <messagingmesh/messaging_mesh.h>

namespace MessagingMesh {
namespace detail {

/// Throws the exception for a failed status, with mm_last_error()'s text.
[[noreturn]] void throwStatus(mm_status status);

/// Throws unless `status` is MM_STATUS_OK.
inline void check(mm_status status) {
    if (status != MM_STATUS_OK) {
        throwStatus(status);
    }
}

/// A std::string from a (pointer, length) pair the C API returned.
inline std::string text(const char* data, size_t length) {
    return length == 0 ? std::string() : std::string(data, length);
}

}  // namespace detail
}  // namespace MessagingMesh
