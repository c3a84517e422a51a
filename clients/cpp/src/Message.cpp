#include "messagingmesh/Message.h"

#include "Access.h"
#include "BlockPool.h"
#include "Status.h"
#include "messagingmesh/Exceptions.h"

namespace MessagingMesh {

using detail::check;

namespace {

/// An empty message for reading a moved-from Message.
const mm_message* emptyMessage() {
    static mm_message* const empty = mm_message_new();
    return empty;
}

/// Whether a getter's status means "absent or another type" (tryGet* return nothing then).
bool isMiss(mm_status status) { return status == MM_STATUS_FIELD_NOT_FOUND || status == MM_STATUS_WRONG_TYPE; }

}  // namespace

void Message::MessageDeleter::operator()(mm_message* message) const noexcept { mm_message_free(message); }
void Message::ReceivedDeleter::operator()(mm_received* received) const noexcept { mm_received_free(received); }

MessagePtr detail::MessageAccess::fromReceived(mm_received* received) {
    try {
        return std::allocate_shared<Message>(BlockPool<Message>(), ReceivedKey(), received);
    } catch (...) {
        mm_received_free(received);
        throw;
    }
}

MessagePtr detail::MessageAccess::fromOwned(mm_message* handle) {
    std::unique_ptr<mm_message, Message::MessageDeleter> owned(handle);
    auto message = std::make_shared<Message>();
    message->owned_ = std::move(owned);
    return message;
}

MessagePtr Message::create() { return std::make_shared<Message>(); }

Message::Message() : owned_(mm_message_new()) {}
Message::~Message() = default;

Message::Message(detail::ReceivedKey, mm_received* received) noexcept : received_(received) {}

Message::Message(const Message& other) {
    mm_message* copy = nullptr;
    check(mm_message_clone(other.read(), &copy));
    owned_.reset(copy);
}

Message& Message::operator=(const Message& other) {
    if (this != &other) {
        Message copy(other);
        *this = std::move(copy);
    }
    return *this;
}

Message::Message(Message&& other) noexcept = default;
Message& Message::operator=(Message&& other) noexcept = default;

const mm_message* Message::read() const {
    if (owned_) {
        return owned_.get();
    }
    if (received_) {
        const mm_message* message = nullptr;
        check(mm_received_message(received_.get(), &message));
        return message;
    }
    return emptyMessage();
}

mm_message* Message::write() {
    if (!owned_) {
        mm_message* copy = nullptr;
        if (received_) {
            check(mm_message_clone(read(), &copy));
            received_.reset();
        } else {
            copy = mm_message_new();
        }
        owned_.reset(copy);
    }
    return owned_.get();
}

MessagePtr Message::deserialize(const void* data, std::size_t length) {
    mm_message* decoded = nullptr;
    check(mm_message_decode(static_cast<const uint8_t*>(data), length, &decoded));
    return detail::MessageAccess::fromOwned(decoded);
}

Message& Message::addString(const std::string& name, const std::string& value) {
    check(mm_message_add_string(write(), name.data(), name.size(), value.data(), value.size()));
    return *this;
}
Message& Message::addSignedInt32(const std::string& name, int32_t value) {
    check(mm_message_add_i32(write(), name.data(), name.size(), value));
    return *this;
}
Message& Message::addUnsignedInt32(const std::string& name, uint32_t value) {
    check(mm_message_add_u32(write(), name.data(), name.size(), value));
    return *this;
}
Message& Message::addSignedInt64(const std::string& name, int64_t value) {
    check(mm_message_add_i64(write(), name.data(), name.size(), value));
    return *this;
}
Message& Message::addUnsignedInt64(const std::string& name, uint64_t value) {
    check(mm_message_add_u64(write(), name.data(), name.size(), value));
    return *this;
}
Message& Message::addDouble(const std::string& name, double value) {
    check(mm_message_add_f64(write(), name.data(), name.size(), value));
    return *this;
}
Message& Message::addBool(const std::string& name, bool value) {
    check(mm_message_add_bool(write(), name.data(), name.size(), value));
    return *this;
}
Message& Message::addBLOB(const std::string& name, const BLOBPtr& value) {
    if (!value) {
        throw InvalidArgumentException(MM_STATUS_NULL_ARGUMENT, "addBLOB: the BLOB is null");
    }
    return addBLOB(name, value->getData(), value->size());
}
Message& Message::addBLOB(const std::string& name, const void* data, std::size_t length) {
    check(mm_message_add_blob(write(), name.data(), name.size(), static_cast<const uint8_t*>(data), length));
    return *this;
}
Message& Message::addMessage(const std::string& name, const MessagePtr& value) {
    if (!value) {
        throw InvalidArgumentException(MM_STATUS_NULL_ARGUMENT, "addMessage: the message is null");
    }
    return addMessage(name, *value);
}
Message& Message::addMessage(const std::string& name, const Message& value) {
    const mm_message* nested = value.read();
    check(mm_message_add_message(write(), name.data(), name.size(), nested));
    return *this;
}

Message& Message::addField(const FieldPtr& field) {
    if (!field) {
        throw InvalidArgumentException(MM_STATUS_NULL_ARGUMENT, "addField: the field is null");
    }
    const std::string& name = field->getName();
    switch (field->getFieldType()) {
        case Field::STRING: return addString(name, field->getString());
        case Field::SIGNED_INT32: return addSignedInt32(name, field->getSignedInt32());
        case Field::UNSIGNED_INT32: return addUnsignedInt32(name, field->getUnsignedInt32());
        case Field::SIGNED_INT64: return addSignedInt64(name, field->getSignedInt64());
        case Field::UNSIGNED_INT64: return addUnsignedInt64(name, field->getUnsignedInt64());
        case Field::DOUBLE: return addDouble(name, field->getDouble());
        case Field::BOOL: return addBool(name, field->getBool());
        case Field::BLOB: return addBLOB(name, field->getBLOB());
        case Field::MESSAGE: return addMessage(name, field->getMessage());
        case Field::NOT_SET: break;
    }
    throw InvalidArgumentException(MM_STATUS_INVALID_ARGUMENT, "addField: field `" + name + "` has no value");
}

std::string Message::getString(const std::string& name) const {
    const char* data = nullptr;
    size_t length = 0;
    check(mm_message_get_string(read(), name.data(), name.size(), &data, &length));
    return detail::text(data, length);
}

#define MM_SCALAR_GETTERS(Name, Type, function)                                          \
    Type Message::get##Name(const std::string& name) const {                             \
        Type value{};                                                                    \
        check(function(read(), name.data(), name.size(), &value));                       \
        return value;                                                                    \
    }                                                                                    \
    std::optional<Type> Message::tryGet##Name(const std::string& name) const {           \
        Type value{};                                                                    \
        const mm_status status = function(read(), name.data(), name.size(), &value);     \
        if (isMiss(status)) {                                                            \
            return std::nullopt;                                                         \
        }                                                                                \
        check(status);                                                                   \
        return value;                                                                    \
    }

MM_SCALAR_GETTERS(SignedInt32, int32_t, mm_message_get_i32)
MM_SCALAR_GETTERS(UnsignedInt32, uint32_t, mm_message_get_u32)
MM_SCALAR_GETTERS(SignedInt64, int64_t, mm_message_get_i64)
MM_SCALAR_GETTERS(UnsignedInt64, uint64_t, mm_message_get_u64)
MM_SCALAR_GETTERS(Double, double, mm_message_get_f64)
MM_SCALAR_GETTERS(Bool, bool, mm_message_get_bool)
#undef MM_SCALAR_GETTERS

std::optional<std::string> Message::tryGetString(const std::string& name) const {
    const char* data = nullptr;
    size_t length = 0;
    const mm_status status = mm_message_get_string(read(), name.data(), name.size(), &data, &length);
    if (isMiss(status)) {
        return std::nullopt;
    }
    check(status);
    return detail::text(data, length);
}

BLOBPtr Message::getBLOB(const std::string& name) const {
    const uint8_t* data = nullptr;
    size_t length = 0;
    check(mm_message_get_blob(read(), name.data(), name.size(), &data, &length));
    return BLOB::create_copy(data, length);
}

BLOBPtr Message::tryGetBLOB(const std::string& name) const {
    const uint8_t* data = nullptr;
    size_t length = 0;
    const mm_status status = mm_message_get_blob(read(), name.data(), name.size(), &data, &length);
    if (isMiss(status)) {
        return nullptr;
    }
    check(status);
    return BLOB::create_copy(data, length);
}

MessagePtr Message::getMessage(const std::string& name) const {
    mm_message* nested = nullptr;
    check(mm_message_get_message(read(), name.data(), name.size(), &nested));
    return detail::MessageAccess::fromOwned(nested);
}

MessagePtr Message::tryGetMessage(const std::string& name) const {
    mm_message* nested = nullptr;
    const mm_status status = mm_message_get_message(read(), name.data(), name.size(), &nested);
    if (isMiss(status)) {
        return nullptr;
    }
    check(status);
    return detail::MessageAccess::fromOwned(nested);
}

FieldPtr Message::getFieldAt(std::size_t index) const {
    const mm_message* message = read();
    mm_field_view view{};
    check(mm_message_field_at(message, index, &view));
    auto field = std::make_shared<Field>(detail::text(view.name, view.name_len));
    switch (view.field_type) {
        case MM_FIELD_TYPE_STRING:
            field->setString(detail::text(reinterpret_cast<const char*>(view.data), view.data_len));
            break;
        case MM_FIELD_TYPE_SIGNED_INT32: field->setSignedInt32(static_cast<int32_t>(view.int_value)); break;
        case MM_FIELD_TYPE_UNSIGNED_INT32: field->setUnsignedInt32(static_cast<uint32_t>(view.uint_value)); break;
        case MM_FIELD_TYPE_SIGNED_INT64: field->setSignedInt64(view.int_value); break;
        case MM_FIELD_TYPE_UNSIGNED_INT64: field->setUnsignedInt64(view.uint_value); break;
        case MM_FIELD_TYPE_DOUBLE: field->setDouble(view.double_value); break;
        case MM_FIELD_TYPE_BOOL: field->setBool(view.bool_value); break;
        case MM_FIELD_TYPE_BLOB: field->setBLOB(BLOB::create_copy(view.data, view.data_len)); break;
        case MM_FIELD_TYPE_MESSAGE: {
            mm_message* nested = nullptr;
            check(mm_message_get_message_at(message, index, &nested));
            field->setMessage(detail::MessageAccess::fromOwned(nested));
            break;
        }
        case MM_FIELD_TYPE_NOT_SET: break;
    }
    return field;
}

FieldPtr Message::getField(const std::string& name) const {
    size_t index = 0;
    check(mm_message_find(read(), name.data(), name.size(), &index));
    return getFieldAt(index);
}

FieldPtr Message::tryGetField(const std::string& name) const {
    size_t index = 0;
    const mm_status status = mm_message_find(read(), name.data(), name.size(), &index);
    if (status == MM_STATUS_FIELD_NOT_FOUND) {
        return nullptr;
    }
    check(status);
    return getFieldAt(index);
}

std::vector<FieldPtr> Message::getAllFields() const {
    std::vector<FieldPtr> fields;
    const std::size_t count = getFieldCount();
    fields.reserve(count);
    for (std::size_t index = 0; index < count; ++index) {
        fields.push_back(getFieldAt(index));
    }
    return fields;
}

bool Message::hasField(const std::string& name) const {
    size_t index = 0;
    const mm_status status = mm_message_find(read(), name.data(), name.size(), &index);
    if (status == MM_STATUS_FIELD_NOT_FOUND) {
        return false;
    }
    check(status);
    return true;
}

std::size_t Message::getFieldCount() const {
    size_t count = 0;
    check(mm_message_count(read(), &count));
    return count;
}

void Message::clear() { check(mm_message_clear(write())); }

std::vector<uint8_t> Message::serialize() const {
    const mm_message* message = read();
    size_t size = 0;
    check(mm_message_encoded_size(message, &size));
    std::vector<uint8_t> bytes(size);
    size_t written = 0;
    check(mm_message_encode(message, bytes.data(), bytes.size(), &written));
    bytes.resize(written);
    return bytes;
}

std::string Message::toString() const {
    const mm_message* message = read();
    std::string text(128, '\0');
    size_t length = 0;
    mm_status status = mm_message_to_string(message, text.data(), text.size(), &length);
    if (status == MM_STATUS_BUFFER_TOO_SMALL) {
        text.assign(length + 1, '\0');
        status = mm_message_to_string(message, text.data(), text.size(), &length);
    }
    check(status);
    text.resize(length);
    return text;
}

bool Message::operator==(const Message& other) const {
    bool equal = false;
    check(mm_message_equal(read(), other.read(), &equal));
    return equal;
}

std::ostream& operator<<(std::ostream& out, const Message& message) { return out << message.toString(); }

}  // namespace MessagingMesh
