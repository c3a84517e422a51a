// Message: an ordered list of named, typed fields.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "BLOB.h"
#include "Field.h"
#include "Types.h"

struct mm_message;
struct mm_received;

namespace MessagingMesh {

namespace detail {
struct MessageAccess;
/// Lets only the library make a Message over a delivered message (in place, in pooled memory).
class ReceivedKey {
    friend struct MessageAccess;
    ReceivedKey() {}
};
}  // namespace detail

/// An ordered list of named, typed fields.
///
/// * Fields keep the order they were added in, on the wire and when received. Names may repeat:
///   the get* functions read the first field with the name; iteration reaches every field.
/// * get* functions throw FieldNotFoundException or WrongFieldTypeException; tryGet* functions
///   return std::nullopt (or a null pointer) instead. Values are never converted.
/// * add* functions copy their arguments into the message and return it, for chaining.
/// * A received message is decoded the first time it is read. A message is safe to read from
///   several threads at once, not to change while others read it.
class Message {
public:
    /// A new, empty message.
    static MessagePtr create();
    /// Decodes a message from bytes written by serialize() (or any MM/1 or MM/2 peer).
    /// Throws DecodeException for bytes that are not a message.
    static MessagePtr deserialize(const void* data, std::size_t length);
    static MessagePtr deserialize(const std::vector<uint8_t>& bytes) { return deserialize(bytes.data(), bytes.size()); }

    Message();
    ~Message();
    /// A deep copy.
    Message(const Message& other);
    Message& operator=(const Message& other);
    Message(Message&& other) noexcept;
    Message& operator=(Message&& other) noexcept;

    Message& addString(const std::string& name, const std::string& value);
    Message& addSignedInt32(const std::string& name, int32_t value);
    Message& addUnsignedInt32(const std::string& name, uint32_t value);
    Message& addSignedInt64(const std::string& name, int64_t value);
    Message& addUnsignedInt64(const std::string& name, uint64_t value);
    Message& addDouble(const std::string& name, double value);
    Message& addBool(const std::string& name, bool value);
    /// Adds a copy of the BLOB's bytes.
    Message& addBLOB(const std::string& name, const BLOBPtr& value);
    /// Adds a copy of `length` bytes at `data`.
    Message& addBLOB(const std::string& name, const void* data, std::size_t length);
    /// Adds a copy of `value` as a nested message.
    Message& addMessage(const std::string& name, const MessagePtr& value);
    Message& addMessage(const std::string& name, const Message& value);
    /// Adds a copy of a field (of any type; a NOT_SET field throws InvalidArgumentException).
    Message& addField(const FieldPtr& field);

    std::string getString(const std::string& name) const;
    int32_t getSignedInt32(const std::string& name) const;
    uint32_t getUnsignedInt32(const std::string& name) const;
    int64_t getSignedInt64(const std::string& name) const;
    uint64_t getUnsignedInt64(const std::string& name) const;
    double getDouble(const std::string& name) const;
    bool getBool(const std::string& name) const;
    /// A copy of the field's bytes.
    BLOBPtr getBLOB(const std::string& name) const;
    /// A copy of the nested message.
    MessagePtr getMessage(const std::string& name) const;

    std::optional<std::string> tryGetString(const std::string& name) const;
    std::optional<int32_t> tryGetSignedInt32(const std::string& name) const;
    std::optional<uint32_t> tryGetUnsignedInt32(const std::string& name) const;
    std::optional<int64_t> tryGetSignedInt64(const std::string& name) const;
    std::optional<uint64_t> tryGetUnsignedInt64(const std::string& name) const;
    std::optional<double> tryGetDouble(const std::string& name) const;
    std::optional<bool> tryGetBool(const std::string& name) const;
    /// Null when there is no such BLOB field.
    BLOBPtr tryGetBLOB(const std::string& name) const;
    /// Null when there is no such MESSAGE field.
    MessagePtr tryGetMessage(const std::string& name) const;

    /// A copy of the first field named `name`; throws FieldNotFoundException.
    FieldPtr getField(const std::string& name) const;
    /// A copy of the first field named `name`, or null.
    FieldPtr tryGetField(const std::string& name) const;
    /// A copy of the field at `index` (wire order, from 0); throws FieldNotFoundException.
    FieldPtr getFieldAt(std::size_t index) const;
    /// Copies of every field, in order.
    std::vector<FieldPtr> getAllFields() const;
    /// Whether a field named `name` exists.
    bool hasField(const std::string& name) const;
    /// The number of fields, duplicates included.
    std::size_t getFieldCount() const;
    std::size_t size() const { return getFieldCount(); }
    bool empty() const { return getFieldCount() == 0; }
    /// Removes every field.
    void clear();

    /// Iterates over copies of the fields, in order: `for (const FieldPtr& field : *message)`.
    class const_iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = FieldPtr;
        using difference_type = std::ptrdiff_t;
        using pointer = const FieldPtr*;
        using reference = FieldPtr;
        const_iterator(const Message* message, std::size_t index) : message_(message), index_(index) {}
        FieldPtr operator*() const { return message_->getFieldAt(index_); }
        const_iterator& operator++() { ++index_; return *this; }
        const_iterator operator++(int) { const_iterator old = *this; ++index_; return old; }
        bool operator==(const const_iterator& other) const { return index_ == other.index_; }
        bool operator!=(const const_iterator& other) const { return index_ != other.index_; }

    private:
        const Message* message_;
        std::size_t index_;
    };
    const_iterator begin() const { return const_iterator(this, 0); }
    const_iterator end() const { return const_iterator(this, getFieldCount()); }

    /// The encoded message (field count and fields, SPEC §4; no length prefix).
    std::vector<uint8_t> serialize() const;
    /// The message as text, e.g. `{sym="IBM" px=123.4}`.
    std::string toString() const;
    /// Same fields, same order, same values (doubles bit for bit).
    bool operator==(const Message& other) const;
    bool operator!=(const Message& other) const { return !(*this == other); }

    /// Internal: a message over a delivered message (the library makes these; see ReceivedKey).
    Message(detail::ReceivedKey, mm_received* received) noexcept;

private:
    friend struct detail::MessageAccess;
    const mm_message* read() const;
    mm_message* write();

    struct MessageDeleter { void operator()(mm_message* message) const noexcept; };
    struct ReceivedDeleter { void operator()(mm_received* received) const noexcept; };
    /// The message when built or changed here.
    std::unique_ptr<mm_message, MessageDeleter> owned_;
    /// The delivered message it was received as, until it is changed (decoded on first read).
    std::unique_ptr<mm_received, ReceivedDeleter> received_;
};

std::ostream& operator<<(std::ostream& out, const Message& message);

}  // namespace MessagingMesh
