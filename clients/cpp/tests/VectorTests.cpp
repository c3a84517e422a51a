// Every protocol vector (testdata/vectors, SPEC §10) through the C++ API: it decodes to the
// listed header and values, re-encodes to the identical bytes, and the frames built from scratch
// with the API are byte-exact too.
#include <cctype>
#include <fstream>
#include <functional>
#include <iterator>

#include <gtest/gtest.h>
#include <messagingmesh/MessagingMesh.h>

#include "Process.h"

using namespace MessagingMesh;
using Wire::Action;
using Wire::Frame;

namespace {

const std::string kInbox = "_INBOX.k3Jx9aQ0pLm2Zr8sT4uVw6.1";

std::vector<uint8_t> vector(const std::string& name) {
    const std::string path = mmtest::requiredPath("MM_TESTDATA") + "/vectors/" + name;
    std::ifstream file(path, std::ios::binary);
    if (!file) throw std::runtime_error("cannot read " + path);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

/// The 12 fields of reference-message.bin, built with the API.
MessagePtr referenceFields() {
    const uint8_t blob[] = {0x01, 0x02, 0x03, 0xe6, 0xf0, 0xfa};
    auto nested = Message::create();
    nested->addString("s", "hello, world!").addDouble("d", 123.456);
    auto message = Message::create();
    message->addString("s", "hello, world!")
        .addSignedInt32("i32_1", 123456)
        .addSignedInt32("i32_2", -123456)
        .addUnsignedInt32("ui32", 3123456789u)
        .addSignedInt64("i64_1", 4123456789123456789LL)
        .addSignedInt64("i64_2", -4123456789123456789LL)
        .addUnsignedInt64("ui64", 11123456789123456789ULL)
        .addDouble("d", 123.456)
        .addBool("b1", true)
        .addBool("b2", false)
        .addBLOB("blob", blob, sizeof blob)
        .addMessage("sm", nested);
    return message;
}

void expectReferenceFields(const Message& message) {
    const std::vector<std::string> names{"s", "i32_1", "i32_2", "ui32", "i64_1", "i64_2",
                                         "ui64", "d", "b1", "b2", "blob", "sm"};
    const std::vector<Field::DataType> types{Field::STRING, Field::SIGNED_INT32, Field::SIGNED_INT32, Field::UNSIGNED_INT32,
                                             Field::SIGNED_INT64, Field::SIGNED_INT64, Field::UNSIGNED_INT64, Field::DOUBLE,
                                             Field::BOOL, Field::BOOL, Field::BLOB, Field::MESSAGE};
    ASSERT_EQ(message.getFieldCount(), 12u);
    for (std::size_t i = 0; i < names.size(); ++i) {
        EXPECT_EQ(message.getFieldAt(i)->getName(), names[i]);
        EXPECT_EQ(message.getFieldAt(i)->getFieldType(), types[i]) << names[i];
    }
    EXPECT_EQ(message.getString("s"), "hello, world!");
    EXPECT_EQ(message.getSignedInt32("i32_1"), 123456);
    EXPECT_EQ(message.getSignedInt32("i32_2"), -123456);
    EXPECT_EQ(message.getUnsignedInt32("ui32"), 3123456789u);
    EXPECT_EQ(message.getSignedInt64("i64_1"), 4123456789123456789LL);
    EXPECT_EQ(message.getSignedInt64("i64_2"), -4123456789123456789LL);
    EXPECT_EQ(message.getUnsignedInt64("ui64"), 11123456789123456789ULL);
    EXPECT_EQ(message.getDouble("d"), 123.456);
    EXPECT_TRUE(message.getBool("b1"));
    EXPECT_FALSE(message.getBool("b2"));
    const uint8_t blob[] = {0x01, 0x02, 0x03, 0xe6, 0xf0, 0xfa};
    EXPECT_EQ(*message.getBLOB("blob"), *BLOB::create_copy(blob, sizeof blob));
    auto nested = message.getMessage("sm");
    ASSERT_EQ(nested->getFieldCount(), 2u);
    EXPECT_EQ(nested->getString("s"), "hello, world!");
    EXPECT_EQ(nested->getDouble("d"), 123.456);
}

MessagePtr body(std::initializer_list<std::function<void(Message&)>> steps) {
    auto message = Message::create();
    for (const auto& step : steps) step(*message);
    return message;
}

Frame frame(uint32_t id, std::string subject, std::string reply, Action action, MessagePtr message = nullptr) {
    Frame f;
    f.subscriptionId = id;
    f.subject = std::move(subject);
    f.replySubject = std::move(reply);
    f.action = action;
    f.body = std::move(message);
    return f;
}

}  // namespace

TEST(Vectors, ReferenceMessageDecodesAndReencodesByteExact) {
    const auto bytes = vector("reference-message.bin");
    ASSERT_EQ(bytes.size(), 222u);
    const int32_t prefix = static_cast<int32_t>(bytes[0] | bytes[1] << 8 | bytes[2] << 16 | bytes[3] << 24);
    EXPECT_EQ(prefix, 222) << "the length prefix counts itself";
    auto message = Message::deserialize(bytes.data() + 4, bytes.size() - 4);
    expectReferenceFields(*message);
    const std::vector<uint8_t> body(bytes.begin() + 4, bytes.end());
    EXPECT_EQ(message->serialize(), body);
    EXPECT_EQ(referenceFields()->serialize(), body) << "built with the API";
}

TEST(Vectors, AllTypesFrame) {
    const auto bytes = vector("all-types-frame.bin");
    const Frame decoded = Frame::deserialize(bytes);
    EXPECT_EQ(decoded.action, Action::SEND_MESSAGE);
    EXPECT_EQ(decoded.subject, "TEST.ALL");
    EXPECT_EQ(decoded.replySubject, "");
    EXPECT_EQ(decoded.subscriptionId, 0u);
    expectReferenceFields(*decoded.body);
    EXPECT_EQ(decoded.serialize(), bytes);
    EXPECT_EQ(frame(0, "TEST.ALL", "", Action::SEND_MESSAGE, referenceFields()).serialize(), bytes);
}

struct HeaderCase {
    const char* file;
    Action action;
    uint32_t subscriptionId;
    std::string subject;
    std::string replySubject;
    std::size_t fieldCount;
};

/// Printed by name (GoogleTest would otherwise dump the struct's bytes, padding included).
void PrintTo(const HeaderCase& value, std::ostream* out) { *out << value.file; }

class EveryVector : public ::testing::TestWithParam<HeaderCase> {};

TEST_P(EveryVector, HeaderDecodesAndFrameReencodesByteExact) {
    const HeaderCase& expected = GetParam();
    const auto bytes = vector(expected.file);
    const Frame decoded = Frame::deserialize(bytes);
    EXPECT_EQ(decoded.action, expected.action);
    EXPECT_EQ(decoded.subscriptionId, expected.subscriptionId);
    EXPECT_EQ(decoded.subject, expected.subject);
    EXPECT_EQ(decoded.replySubject, expected.replySubject);
    EXPECT_EQ(decoded.body->getFieldCount(), expected.fieldCount);
    EXPECT_EQ(decoded.serialize(), bytes);
    // Rebuilt from the decoded parts through a fresh message (not the decoded one).
    auto copy = Message::create();
    for (const FieldPtr& field : *decoded.body) copy->addField(field);
    EXPECT_EQ(frame(expected.subscriptionId, expected.subject, expected.replySubject, expected.action, copy).serialize(),
              bytes);
}

INSTANTIATE_TEST_SUITE_P(
    Vectors, EveryVector,
    ::testing::Values(HeaderCase{"connect-legacy.bin", Action::CONNECT, 0, "VULCAN", "X", 0},
                      HeaderCase{"connect-v2.bin", Action::CONNECT, 0, "VULCAN", "orders-service", 4},
                      HeaderCase{"ack-legacy.bin", Action::ACK, 0, "", "", 0},
                      HeaderCase{"ack-v2.bin", Action::ACK, 0, "", "", 4},
                      HeaderCase{"subscribe.bin", Action::SUBSCRIBE, 1, "A.B", "", 0},
                      HeaderCase{"subscribe-wildcard.bin", Action::SUBSCRIBE, 7, "PRICES.*.>", "", 0},
                      HeaderCase{"unsubscribe-by-id.bin", Action::UNSUBSCRIBE, 1, "", "", 0},
                      HeaderCase{"disconnect.bin", Action::DISCONNECT, 0, "", "", 0},
                      HeaderCase{"send-message.bin", Action::SEND_MESSAGE, 0, "A.B", "", 1},
                      HeaderCase{"send-message-delivered-sub5.bin", Action::SEND_MESSAGE, 5, "A.B", "", 1},
                      HeaderCase{"request-with-reply-subject.bin", Action::SEND_MESSAGE, 0, "Service.Add", kInbox, 2},
                      HeaderCase{"ping.bin", Action::PING, 0, "", "", 1},
                      HeaderCase{"pong.bin", Action::PONG, 0, "", "", 1},
                      HeaderCase{"ping-mesh-flush.bin", Action::PING, 0, "", "", 1},
                      HeaderCase{"error-invalid-subject.bin", Action::ERROR, 3, "bad..subject", "", 2},
                      HeaderCase{"no-responders.bin", Action::NO_RESPONDERS, 1, kInbox, "Service.Add", 0},
                      HeaderCase{"connect-mesh-peer.bin", Action::CONNECT_MESH_PEER, 0, "VULCAN", "G", 0},
                      HeaderCase{"connect-mesh-peer-v2.bin", Action::CONNECT_MESH_PEER, 0, "VULCAN", "host-a:5050", 4},
                      HeaderCase{"ack-mesh-v2.bin", Action::ACK, 0, "", "", 5},
                      HeaderCase{"nest-64.bin", Action::SEND_MESSAGE, 0, "NEST.x", "", 1}),
    [](const ::testing::TestParamInfo<HeaderCase>& info) {
        std::string name = info.param.file;
        name = name.substr(0, name.size() - 4);
        for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
        return name;
    });

TEST(Vectors, FramesBuiltFromScratchAreByteExact) {
    using M = Message&;
    EXPECT_EQ(frame(0, "VULCAN", "orders-service", Action::CONNECT, body({[](M m) {
                        m.addSignedInt32("protocol_version", 2)
                            .addString("client_name", "example 1.0")
                            .addSignedInt32("heartbeat_ms", 5000)
                            .addBool("no_responders", true);
                    }})).serialize(),
              vector("connect-v2.bin"));
    EXPECT_EQ(frame(0, "", "", Action::ACK, body({[](M m) {
                        m.addSignedInt32("protocol_version", 2)
                            .addString("gateway_name", "gw-a")
                            .addUnsignedInt32("max_frame", 67108864u)
                            .addSignedInt32("heartbeat_ms", 5000);
                    }})).serialize(),
              vector("ack-v2.bin"));
    EXPECT_EQ(frame(0, "A.B", "", Action::SEND_MESSAGE, body({[](M m) { m.addSignedInt32("#", 7); }})).serialize(),
              vector("send-message.bin"));
    EXPECT_EQ(frame(5, "A.B", "", Action::SEND_MESSAGE, body({[](M m) { m.addSignedInt32("#", 7); }})).serialize(),
              vector("send-message-delivered-sub5.bin"));
    EXPECT_EQ(frame(0, "Service.Add", kInbox, Action::SEND_MESSAGE,
                    body({[](M m) { m.addDouble("A", 0.5).addDouble("B", 1.5); }}))
                  .serialize(),
              vector("request-with-reply-subject.bin"));
    EXPECT_EQ(frame(0, "", "", Action::PING, body({[](M m) { m.addSignedInt32("k", 42); }})).serialize(), vector("ping.bin"));
    EXPECT_EQ(frame(0, "", "", Action::PONG, body({[](M m) { m.addSignedInt32("k", 42); }})).serialize(), vector("pong.bin"));
    EXPECT_EQ(frame(0, "", "", Action::PING, body({[](M m) { m.addBool("mesh", true); }})).serialize(),
              vector("ping-mesh-flush.bin"));
    EXPECT_EQ(frame(3, "bad..subject", "", Action::ERROR, body({[](M m) {
                        m.addString("code", "INVALID_SUBJECT").addString("text", "empty token at position 2");
                    }})).serialize(),
              vector("error-invalid-subject.bin"));
    EXPECT_EQ(frame(1, kInbox, "Service.Add", Action::NO_RESPONDERS).serialize(), vector("no-responders.bin"));
    EXPECT_EQ(frame(1, "A.B", "", Action::SUBSCRIBE).serialize(), vector("subscribe.bin"));
    EXPECT_EQ(frame(7, "PRICES.*.>", "", Action::SUBSCRIBE).serialize(), vector("subscribe-wildcard.bin"));
    EXPECT_EQ(frame(1, "", "", Action::UNSUBSCRIBE).serialize(), vector("unsubscribe-by-id.bin"));
    EXPECT_EQ(frame(0, "", "", Action::DISCONNECT).serialize(), vector("disconnect.bin"));
    EXPECT_EQ(frame(0, "VULCAN", "X", Action::CONNECT).serialize(), vector("connect-legacy.bin"));
    EXPECT_EQ(frame(0, "", "", Action::ACK).serialize(), vector("ack-legacy.bin"));
    EXPECT_EQ(frame(0, "VULCAN", "G", Action::CONNECT_MESH_PEER).serialize(), vector("connect-mesh-peer.bin"));
    EXPECT_EQ(frame(0, "VULCAN", "host-a:5050", Action::CONNECT_MESH_PEER, body({[](M m) {
                        m.addSignedInt32("protocol_version", 2)
                            .addString("gateway_name", "host-a:5050")
                            .addString("gateway_id", "5f0c3a9e1b7d4c2a8e6f0b1d3c5a7e9f")
                            .addSignedInt32("heartbeat_ms", 5000);
                    }})).serialize(),
              vector("connect-mesh-peer-v2.bin"));
    EXPECT_EQ(frame(0, "", "", Action::ACK, body({[](M m) {
                        m.addSignedInt32("protocol_version", 2)
                            .addString("gateway_name", "host-b:5050")
                            .addString("gateway_id", "a1b2c3d4e5f60718293a4b5c6d7e8f90")
                            .addSignedInt32("heartbeat_ms", 5000)
                            .addUnsignedInt32("max_frame", 67108864u);
                    }})).serialize(),
              vector("ack-mesh-v2.bin"));
}

TEST(Vectors, Nest64DecodesAndNest65IsADecodeError) {
    const Frame deep = Frame::deserialize(vector("nest-64.bin"));
    int depth = 1;
    MessagePtr level = deep.body;
    while (auto inner = level->tryGetMessage("n")) {
        level = inner;
        ++depth;
    }
    EXPECT_EQ(depth, 64);
    try {
        Frame::deserialize(vector("nest-65.bin"));
        FAIL() << "nest-65.bin decoded";
    } catch (const DecodeException& error) {
        EXPECT_NE(std::string(error.what()).find("deep"), std::string::npos) << error.what();
    }
    // One level more than allowed cannot be encoded either.
    auto message = Message::create();
    for (int i = 0; i < 64; ++i) {
        auto outer = Message::create();
        outer->addMessage("n", message);
        message = outer;
    }
    EXPECT_THROW(message->serialize(), EncodeException);
}

TEST(Vectors, TruncatedAndOversizedFramesAreDecodeErrors) {
    auto bytes = vector("send-message.bin");
    EXPECT_THROW(Frame::deserialize(bytes.data(), bytes.size() - 1), DecodeException);
    bytes.push_back(0);
    EXPECT_THROW(Frame::deserialize(bytes), DecodeException);
    const uint8_t tooShort[] = {4, 0, 0, 0};
    EXPECT_THROW(Frame::deserialize(tooShort, sizeof tooShort), DecodeException);
}
