// Field: one named, typed value of a message.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <variant>

#include "Types.h"

namespace MessagingMesh {

/// One named, typed value. A Field obtained from a message is a copy: changing it does not
/// change the message (add it to a message with Message::addField).
class Field {
public:
    /// The type of a field; the values are the wire codes.
    enum DataType {
        NOT_SET = 0,
        STRING = 1,
        SIGNED_INT32 = 2,
        UNSIGNED_INT32 = 3,
        SIGNED_INT64 = 4,
        UNSIGNED_INT64 = 5,
        DOUBLE = 6,
        MESSAGE = 7,
        BOOL = 8,
        BLOB = 9,
    };

    /// A field with a name and no value yet (NOT_SET).
    static FieldPtr create(const std::string& name);
    explicit Field(std::string name) : name_(std::move(name)) {}

    /// The field's name.
    const std::string& getName() const noexcept { return name_; }
    /// The field's type.
    DataType getFieldType() const noexcept { return static_cast<DataType>(value_.index()); }

    // Typed getters: they throw WrongFieldTypeException when the field has another type (no
    // conversion, not even between integer types).
    const std::string& getString() const;
    int32_t getSignedInt32() const;
    uint32_t getUnsignedInt32() const;
    int64_t getSignedInt64() const;
    uint64_t getUnsignedInt64() const;
    double getDouble() const;
    bool getBool() const;
    BLOBPtr getBLOB() const;
    MessagePtr getMessage() const;

    // Setters: they replace the value, and the type with it.
    void setString(const std::string& value) { value_ = value; }
    void setSignedInt32(int32_t value) { value_.emplace<SIGNED_INT32>(value); }
    void setUnsignedInt32(uint32_t value) { value_.emplace<UNSIGNED_INT32>(value); }
    void setSignedInt64(int64_t value) { value_.emplace<SIGNED_INT64>(value); }
    void setUnsignedInt64(uint64_t value) { value_.emplace<UNSIGNED_INT64>(value); }
    void setDouble(double value) { value_.emplace<DOUBLE>(value); }
    void setBool(bool value) { value_.emplace<BOOL>(value); }
    void setBLOB(const BLOBPtr& value) { value_.emplace<BLOB>(value); }
    void setMessage(const MessagePtr& value) { value_.emplace<MESSAGE>(value); }

    /// The value as text, e.g. `"IBM"`, `123.4`, `{a=1}`.
    std::string toString() const;
    /// The name of a type, e.g. "SIGNED_INT32".
    static const char* typeName(DataType type) noexcept;

private:
    friend class Message;
    using Value = std::variant<std::monostate, std::string, int32_t, uint32_t, int64_t, uint64_t, double,
                               MessagePtr, bool, BLOBPtr>;
    template <DataType type>
    const std::variant_alternative_t<type, Value>& get() const;

    std::string name_;
    Value value_;
};

std::ostream& operator<<(std::ostream& out, const Field& field);

}  // namespace MessagingMesh
