#include "messagingmesh/Field.h"

#include <sstream>

#include "messagingmesh/BLOB.h"
#include "messagingmesh/Exceptions.h"
#include "messagingmesh/Message.h"
#include <messagingmesh/messaging_mesh.h>

namespace MessagingMesh {

FieldPtr Field::create(const std::string& name) { return std::make_shared<Field>(name); }

template <Field::DataType type>
const std::variant_alternative_t<type, Field::Value>& Field::get() const {
    if (value_.index() != static_cast<std::size_t>(type)) {
        throw WrongFieldTypeException(MM_STATUS_WRONG_TYPE, std::string("field `") + name_ + "` is " +
                                                                typeName(getFieldType()) + ", not " +
                                                                typeName(type));
    }
    return std::get<type>(value_);
}

const std::string& Field::getString() const { return get<STRING>(); }
int32_t Field::getSignedInt32() const { return get<SIGNED_INT32>(); }
uint32_t Field::getUnsignedInt32() const { return get<UNSIGNED_INT32>(); }
int64_t Field::getSignedInt64() const { return get<SIGNED_INT64>(); }
uint64_t Field::getUnsignedInt64() const { return get<UNSIGNED_INT64>(); }
double Field::getDouble() const { return get<DOUBLE>(); }
bool Field::getBool() const { return get<BOOL>(); }
BLOBPtr Field::getBLOB() const { return get<BLOB>(); }
MessagePtr Field::getMessage() const { return get<MESSAGE>(); }

const char* Field::typeName(DataType type) noexcept {
    switch (type) {
        case NOT_SET: return "NOT_SET";
        case STRING: return "STRING";
        case SIGNED_INT32: return "SIGNED_INT32";
        case UNSIGNED_INT32: return "UNSIGNED_INT32";
        case SIGNED_INT64: return "SIGNED_INT64";
        case UNSIGNED_INT64: return "UNSIGNED_INT64";
        case DOUBLE: return "DOUBLE";
        case MESSAGE: return "MESSAGE";
        case BOOL: return "BOOL";
        case BLOB: return "BLOB";
    }
    return "UNKNOWN";
}

std::string Field::toString() const {
    // Render through a one-field message, so that the text matches Message::toString.
    if (getFieldType() == NOT_SET) {
        return "(not set)";
    }
    Message message;
    message.addField(std::make_shared<Field>(*this));
    const std::string whole = message.toString();  // {name=value}
    const std::size_t equals = whole.find('=');
    return equals == std::string::npos ? whole : whole.substr(equals + 1, whole.size() - equals - 2);
}

std::ostream& operator<<(std::ostream& out, const Field& field) {
    return out << field.getName() << '=' << field.toString();
}

}  // namespace MessagingMesh
