// The Message / Field / BLOB / Logger API, in process.
#include <cmath>
#include <cstdlib>
#include <set>
#include <sstream>
#include <cstring>
#include <gtest/gtest.h>
#include <messagingmesh/MessagingMesh.h>

#include "Collector.h"

using namespace MessagingMesh;

TEST(Message, EveryTypeReadsBackWithGetAndTryGet) {
    auto message = mmtest::allTypes();
    EXPECT_EQ(message->getString("text"), "Z\u00fcrich \"quoted\" \U0001F600 \u65e5\u672c");
    EXPECT_EQ(message->getSignedInt32("i32"), -42);
    EXPECT_EQ(message->getUnsignedInt32("u32"), 4000000000u);
    EXPECT_EQ(message->getSignedInt64("i64"), -9000000000000000000LL);
    EXPECT_EQ(message->getUnsignedInt64("u64"), 18446744073709551615ULL);
    EXPECT_EQ(message->getDouble("pi"), 3.141592653589793);
    EXPECT_TRUE(std::signbit(message->getDouble("negzero")));
    EXPECT_TRUE(message->getBool("yes"));
    EXPECT_FALSE(message->getBool("no"));
    const uint8_t blob[] = {0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff};
    BLOBPtr read = message->getBLOB("blob");
    ASSERT_EQ(read->getLength(), 6);
    EXPECT_EQ(std::memcmp(read->getData(), blob, 6), 0);
    MessagePtr meta = message->getMessage("meta");
    EXPECT_EQ(meta->getUnsignedInt32("seq"), 7u);
    EXPECT_EQ(meta->getString("empty"), "");

    EXPECT_EQ(message->tryGetString("text"), message->getString("text"));
    EXPECT_EQ(message->tryGetSignedInt32("i32"), -42);
    EXPECT_EQ(message->tryGetUnsignedInt32("u32"), 4000000000u);
    EXPECT_EQ(message->tryGetSignedInt64("i64"), -9000000000000000000LL);
    EXPECT_EQ(message->tryGetUnsignedInt64("u64"), 18446744073709551615ULL);
    EXPECT_EQ(message->tryGetDouble("pi"), 3.141592653589793);
    EXPECT_EQ(message->tryGetBool("yes"), true);
    ASSERT_TRUE(message->tryGetBLOB("blob"));
    ASSERT_TRUE(message->tryGetMessage("meta"));
}

TEST(Message, MissingAndWrongTypeAreTypedErrorsAndTryGetReturnsNothing) {
    auto message = Message::create();
    message->addSignedInt32("n", 1);
    EXPECT_THROW(message->getSignedInt64("n"), WrongFieldTypeException);
    EXPECT_THROW(message->getString("missing"), FieldNotFoundException);
    try {
        message->getDouble("n");
        FAIL() << "no exception";
    } catch (const WrongFieldTypeException& error) {
        EXPECT_STREQ(error.what(), "field `n` is int32, not double");
    }
    EXPECT_FALSE(message->tryGetSignedInt64("n"));
    EXPECT_FALSE(message->tryGetUnsignedInt32("n"));
    EXPECT_FALSE(message->tryGetString("missing"));
    EXPECT_FALSE(message->tryGetBool("n"));
    EXPECT_EQ(message->tryGetBLOB("n"), nullptr);
    EXPECT_EQ(message->tryGetMessage("missing"), nullptr);
    EXPECT_EQ(message->tryGetField("missing"), nullptr);
    EXPECT_THROW(message->getField("missing"), FieldNotFoundException);
    EXPECT_THROW(message->getFieldAt(1), FieldNotFoundException);
}

TEST(Message, OrderIsKeptDuplicatesAreAllIteratedAndLookupFindsTheFirst) {
    auto message = Message::create();
    message->addSignedInt32("n", 1).addString("s", "x").addSignedInt32("n", 2).addBool("", true);
    EXPECT_EQ(message->getSignedInt32("n"), 1);
    std::vector<std::string> names;
    std::vector<Field::DataType> types;
    for (const FieldPtr& field : *message) {
        names.push_back(field->getName());
        types.push_back(field->getFieldType());
    }
    EXPECT_EQ(names, (std::vector<std::string>{"n", "s", "n", ""}));
    EXPECT_EQ(types, (std::vector<Field::DataType>{Field::SIGNED_INT32, Field::STRING, Field::SIGNED_INT32, Field::BOOL}));
    auto all = message->getAllFields();
    ASSERT_EQ(all.size(), 4u);
    EXPECT_EQ(all[2]->getSignedInt32(), 2);
    EXPECT_EQ(message->getFieldCount(), 4u);
    EXPECT_TRUE(message->hasField(""));
    EXPECT_FALSE(message->hasField("N"));  // case-sensitive
}

TEST(Message, StringsAreBytesEmbeddedNulsAndInvalidUtf8Survive) {
    const std::string withNul("a\0b", 3);
    const std::string notUtf8("\xc3\x28", 2);
    auto message = Message::create();
    message->addString("nul", withNul).addString("bad", notUtf8);
    auto copy = Message::deserialize(message->serialize());
    EXPECT_EQ(copy->getString("nul"), withNul);
    EXPECT_EQ(copy->getString("bad"), notUtf8);
    EXPECT_EQ(copy->getField("bad")->getString(), notUtf8);
}

TEST(Message, FieldsAreCopiesWithTypedGettersAndSetters) {
    auto message = Message::create();
    message->addDouble("px", 1.5);
    FieldPtr field = message->getField("px");
    EXPECT_EQ(field->getName(), "px");
    EXPECT_EQ(field->getFieldType(), Field::DOUBLE);
    EXPECT_EQ(field->getDouble(), 1.5);
    EXPECT_THROW(field->getSignedInt32(), WrongFieldTypeException);
    field->setSignedInt64(-5);  // changes the type, and only the copy
    EXPECT_EQ(field->getFieldType(), Field::SIGNED_INT64);
    EXPECT_EQ(field->getSignedInt64(), -5);
    EXPECT_EQ(message->getDouble("px"), 1.5);
    message->addField(field);
    EXPECT_EQ(message->getFieldAt(1)->getSignedInt64(), -5);

    auto fresh = Field::create("f");
    EXPECT_EQ(fresh->getFieldType(), Field::NOT_SET);
    EXPECT_THROW(message->addField(fresh), InvalidArgumentException);
    const Field::DataType every[] = {Field::STRING, Field::SIGNED_INT32, Field::UNSIGNED_INT32, Field::SIGNED_INT64,
                                     Field::UNSIGNED_INT64, Field::DOUBLE, Field::MESSAGE, Field::BOOL, Field::BLOB};
    auto rebuilt = Message::create();
    const MessagePtr source = mmtest::allTypes();
    for (const FieldPtr& original : *source) {
        rebuilt->addField(original);
    }
    EXPECT_EQ(*rebuilt, *mmtest::allTypes());
    std::set<Field::DataType> seen;
    for (const FieldPtr& f : *rebuilt) seen.insert(f->getFieldType());
    for (Field::DataType type : every) EXPECT_TRUE(seen.count(type)) << Field::typeName(type);
    EXPECT_EQ(static_cast<int>(Field::BLOB), 9);
    EXPECT_EQ(std::string(Field::typeName(Field::UNSIGNED_INT64)), "UNSIGNED_INT64");
}

TEST(Message, NestedMessagesAreCopiedInAndOut) {
    auto inner = Message::create();
    inner->addSignedInt32("a", 1);
    auto outer = Message::create();
    outer->addMessage("inner", inner);
    inner->addSignedInt32("b", 2);  // after adding: not seen by outer
    EXPECT_FALSE(outer->getMessage("inner")->hasField("b"));
    auto out = outer->getMessage("inner");
    out->addSignedInt32("c", 3);  // a copy: outer unchanged
    EXPECT_EQ(outer->getMessage("inner")->getFieldCount(), 1u);
    outer->addMessage("self", *outer);  // adding a message to itself copies it first
    EXPECT_EQ(outer->getMessage("self")->getFieldCount(), 1u);
}

TEST(Message, CopyMoveEqualityAndText) {
    Message original;
    original.addString("sym", "IBM").addDouble("px", 123.4);
    Message copy = original;
    EXPECT_EQ(copy, original);
    copy.addBool("x", true);
    EXPECT_NE(copy, original);
    Message moved = std::move(copy);
    EXPECT_EQ(moved.getFieldCount(), 3u);
    EXPECT_EQ(original.toString(), "{sym=\"IBM\" px=123.4}");
    std::ostringstream text;
    text << original;
    EXPECT_EQ(text.str(), original.toString());
    EXPECT_EQ(original.getField("px")->toString(), "123.4");
    original.clear();
    EXPECT_TRUE(original.empty());
}

TEST(Message, SerializeRoundTripsAndBadBytesThrowDecodeException) {
    auto message = mmtest::allTypes();
    std::vector<uint8_t> bytes = message->serialize();
    auto decoded = Message::deserialize(bytes);
    EXPECT_EQ(*decoded, *message);
    EXPECT_EQ(decoded->serialize(), bytes);
    std::vector<uint8_t> truncated(bytes.begin(), bytes.begin() + 10);
    EXPECT_THROW(Message::deserialize(truncated), DecodeException);
    const uint8_t unknownType[] = {1, 0, 0, 0, 1, 0, 0, 0, 'x', 42};
    EXPECT_THROW(Message::deserialize(unknownType, sizeof unknownType), DecodeException);
}

TEST(BLOB, OwnershipModes) {
    uint8_t bytes[] = {1, 2, 3};
    auto copy = BLOB::create_fromData(bytes, 3, BLOB::TAKE_COPY);
    auto reference = BLOB::create_fromData(bytes, 3, BLOB::HOLD_REFERENCE);
    EXPECT_NE(copy->getData(), static_cast<void*>(bytes));
    EXPECT_EQ(reference->getData(), static_cast<void*>(bytes));
    bytes[0] = 9;
    EXPECT_EQ(static_cast<const uint8_t*>(copy->getData())[0], 1);
    EXPECT_EQ(static_cast<const uint8_t*>(reference->getData())[0], 9);

    void* heap = std::malloc(4);
    std::memcpy(heap, "abcd", 4);
    auto owned = BLOB::create_fromData(heap, 4, BLOB::TAKE_OWNERSHIP);  // freed by the BLOB (ASan/valgrind check)
    EXPECT_EQ(owned->getData(), heap);
    auto message = Message::create();
    message->addBLOB("b", owned).addBLOB("r", reference);
    owned.reset();
    EXPECT_EQ(message->getBLOB("b")->getLength(), 4);
    EXPECT_EQ(std::memcmp(message->getBLOB("b")->getData(), "abcd", 4), 0);
    EXPECT_EQ(*message->getBLOB("r"), *reference);

    EXPECT_THROW(BLOB::create_fromData(bytes, -1, BLOB::TAKE_COPY), InvalidArgumentException);
    EXPECT_THROW(BLOB::create_fromData(nullptr, 1, BLOB::TAKE_COPY), InvalidArgumentException);
    EXPECT_EQ(BLOB::create_fromData(nullptr, 0, BLOB::TAKE_COPY)->getLength(), 0);
    EXPECT_THROW(message->addBLOB("null", BLOBPtr()), InvalidArgumentException);
}

TEST(Logger, CallbackGetsLinesAtOrAboveTheMinimumLevel) {
    std::vector<std::pair<Logger::LogLevel, std::string>> lines;
    Logger::registerCallback([&](Logger::LogLevel level, const std::string& line) { lines.emplace_back(level, line); });
    Logger::setMinimumLevel(Logger::LOG_LEVEL_WARN);
    Logger::log(Logger::LOG_LEVEL_INFO, "dropped");
    Logger::log(Logger::LOG_LEVEL_ERROR, "kept");
    Logger::log(Logger::LOG_LEVEL_FATAL, "fatal");
    Logger::setMinimumLevel(Logger::LOG_LEVEL_INFO);
    Logger::registerCallback(nullptr);
    Logger::log(Logger::LOG_LEVEL_ERROR, "nobody listens");
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[0].first, Logger::LOG_LEVEL_ERROR);
    EXPECT_EQ(lines[0].second, "kept");
    EXPECT_EQ(lines[1].first, Logger::LOG_LEVEL_FATAL);
    EXPECT_STREQ(Logger::levelName(Logger::LOG_LEVEL_DEBUG), "DEBUG");
}

TEST(Connection, VersionIsTheLibraryVersion) { EXPECT_EQ(Connection::getVersion(), "0.1.0"); }
