#include "messagingmesh/BLOB.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "messagingmesh/Exceptions.h"
#include <messagingmesh/messaging_mesh.h>

namespace MessagingMesh {

BLOB::BLOB(void* data, std::size_t length, bool owned) noexcept : data_(data), length_(length), owned_(owned) {}

BLOB::~BLOB() {
    if (owned_) {
        std::free(data_);
    }
}

BLOBPtr BLOB::create_fromData(void* data, int32_t length, Ownership ownership) {
    if (length < 0) {
        throw InvalidArgumentException(MM_STATUS_INVALID_ARGUMENT,
                                       "BLOB length " + std::to_string(length) + " is negative");
    }
    if (data == nullptr && length > 0) {
        throw InvalidArgumentException(MM_STATUS_NULL_ARGUMENT, "BLOB data is null");
    }
    switch (ownership) {
        case TAKE_OWNERSHIP: return BLOBPtr(new BLOB(data, static_cast<std::size_t>(length), true));
        case HOLD_REFERENCE: return BLOBPtr(new BLOB(data, static_cast<std::size_t>(length), false));
        case TAKE_COPY: return create_copy(data, static_cast<std::size_t>(length));
    }
    throw InvalidArgumentException(MM_STATUS_INVALID_ARGUMENT, "unknown BLOB::Ownership");
}

BLOBPtr BLOB::create_copy(const void* data, std::size_t length) {
    if (data == nullptr && length > 0) {
        throw InvalidArgumentException(MM_STATUS_NULL_ARGUMENT, "BLOB data is null");
    }
    void* copy = nullptr;
    if (length > 0) {
        copy = std::malloc(length);
        if (copy == nullptr) {
            throw std::bad_alloc();
        }
        std::memcpy(copy, data, length);
    }
    try {
        return BLOBPtr(new BLOB(copy, length, true));
    } catch (...) {
        std::free(copy);
        throw;
    }
}

bool BLOB::operator==(const BLOB& other) const noexcept {
    return length_ == other.length_ && (length_ == 0 || std::memcmp(data_, other.data_, length_) == 0);
}

}  // namespace MessagingMesh
