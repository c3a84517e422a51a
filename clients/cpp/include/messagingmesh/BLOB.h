// BLOB: opaque bytes, as a field value.
#pragma once

#include <cstddef>
#include <cstdint>

#include "Types.h"

namespace MessagingMesh {

/// A block of bytes. Adding a BLOB to a message copies its bytes into the message; a BLOB read
/// from a message owns a copy of the field's bytes.
class BLOB {
public:
    /// What create_fromData does with the caller's memory.
    enum Ownership {
        /// The BLOB takes the memory over and releases it with std::free (it must come from
        /// std::malloc, std::calloc or std::realloc).
        TAKE_OWNERSHIP,
        /// The BLOB copies the bytes; the caller keeps its memory.
        TAKE_COPY,
        /// The BLOB points at the caller's memory, which must outlive it (and is not released).
        HOLD_REFERENCE,
    };

    /// A BLOB over `length` bytes at `data` (null with length 0: empty).
    /// Throws InvalidArgumentException for a negative length or a null pointer with a length.
    static BLOBPtr create_fromData(void* data, int32_t length, Ownership ownership);
    /// A BLOB holding a copy of `length` bytes at `data`.
    static BLOBPtr create_copy(const void* data, std::size_t length);

    ~BLOB();
    BLOB(const BLOB&) = delete;
    BLOB& operator=(const BLOB&) = delete;

    /// The bytes.
    void* getData() noexcept { return data_; }
    /// The bytes.
    const void* getData() const noexcept { return data_; }
    /// Their number.
    int32_t getLength() const noexcept { return static_cast<int32_t>(length_); }
    /// Their number, as a size.
    std::size_t size() const noexcept { return length_; }

    /// Same length and bytes.
    bool operator==(const BLOB& other) const noexcept;
    bool operator!=(const BLOB& other) const noexcept { return !(*this == other); }

private:
    BLOB(void* data, std::size_t length, bool owned) noexcept;
    void* data_;
    std::size_t length_;
    bool owned_;
};

}  // namespace MessagingMesh
