// Interop in every direction between the C++ client, the Rust side (the `mm` tool, built on the
// Rust client library) and the C# client (tests/dotnet/InteropPeer.cs), through one gateway and
// across a two-gateway mesh (the C++ side on gateway 1, the other side on gateway 2). Every test
// checks field names, types and values end to end.
//
// Readiness is never a sleep: `mm listen` / `mm reply` print their "listening" / "answering" line
// after their subscription is confirmed by their gateway, the C# peer after a mesh-wide flush,
// C++ subscribers flush mesh-wide; where the other side cannot confirm mesh-wide (the mm tool),
// the C++ side polls with a probe until the interest has crossed the mesh.
#include <algorithm>
#include <csignal>

#include <gtest/gtest.h>
#include <messagingmesh/MessagingMesh.h>

#include "Collector.h"
#include "Process.h"

using namespace MessagingMesh;
using namespace std::chrono_literals;
using mmtest::ChildProcess;
using mmtest::Collector;
using mmtest::kDeadline;

namespace {

enum class Topology { OneGateway, Mesh };

/// The all-types message as the C# peer prints it.
const std::vector<std::string> kPeerLines{
    "text:str=Z\u00fcrich \"quoted\" \U0001F600 \u65e5\u672c",
    "i32:i32=-42",
    "u32:u32=4000000000",
    "i64:i64=-9000000000000000000",
    "u64:u64=18446744073709551615",
    "pi:f64=3.141592653589793",
    "negzero:f64=-0",
    "yes:bool=true",
    "no:bool=false",
    "blob:blob=00017f80feff",
    "meta:msg={",
    "  seq:u32=7",
    "  empty:str=",
    "}",
    "tag:str=a",
    "tag:str=b",
};

/// The all-types message as `mm listen` prints it (one level of its indentation removed).
const std::vector<std::string> kMmLines{
    "text:str=\"Z\u00fcrich \\\"quoted\\\" \U0001F600 \u65e5\u672c\"",
    "i32:i32=-42",
    "u32:u32=4000000000",
    "i64:i64=-9000000000000000000",
    "u64:u64=18446744073709551615",
    "pi:f64=3.141592653589793",
    "negzero:f64=-0.0",
    "yes:bool=true",
    "no:bool=false",
    "blob:blob=0x00017f80feff",
    "meta:msg={",
    "    seq:u32=7",
    "    empty:str=\"\"",
    "}",
    "tag:str=\"a\"",
    "tag:str=\"b\"",
};

/// The field lines `mm listen` printed for the first message on `subject`.
std::vector<std::string> mmMessageLines(const std::vector<std::string>& stdout, const std::string& subject) {
    std::vector<std::string> lines;
    bool inside = false;
    for (const std::string& line : stdout) {
        if (!inside) {
            inside = line.find(" subject=" + subject + " ") != std::string::npos;
            continue;
        }
        if (line == "}") break;
        lines.push_back(line.rfind("    ", 0) == 0 ? line.substr(4) : line);
    }
    return lines;
}

/// The field lines the C# peer printed for the first message on `subject`.
std::vector<std::string> peerMessageLines(const std::vector<std::string>& stdout, const std::string& subject) {
    std::vector<std::string> lines;
    bool inside = false;
    for (const std::string& line : stdout) {
        if (line.rfind("subject=", 0) == 0) {
            if (inside) break;
            inside = line.rfind("subject=" + subject + " ", 0) == 0;
            continue;
        }
        if (inside) lines.push_back(line);
    }
    return lines;
}

/// An echo responder: the request's fields plus from="cpp".
SubscriptionCallback echo() {
    return [](Connection& connection, const std::string&, const std::string& reply, MessagePtr request, void*) {
        auto answer = Message::create();
        for (const FieldPtr& field : *request) answer->addField(field);
        answer->addString("from", "cpp");
        connection.sendReply(answer, reply);
    };
}

class Interop : public ::testing::TestWithParam<Topology> {
protected:
    void SetUp() override {
        service_ = mmtest::uniqueService("INTEROP");
        if (GetParam() == Topology::Mesh) {
            mesh_ = std::make_unique<mmtest::Mesh>(service_);
            cppPort_ = mesh_->port(0);
            otherPort_ = mesh_->port(1);
        } else {
            gateway_ = std::make_unique<mmtest::Gateway>();
            cppPort_ = otherPort_ = gateway_->port();
        }
    }

    std::unique_ptr<Connection> connect(const std::string& client) {
        return std::make_unique<Connection>(mmtest::params(cppPort_, service_, client));
    }

    /// `mm COMMAND ARGS... --gateway 127.0.0.1:OTHER --service SERVICE`.
    std::unique_ptr<ChildProcess> mm(std::vector<std::string> arguments) {
        arguments.insert(arguments.end(), {"--gateway", "127.0.0.1:" + std::to_string(otherPort_), "--service", service_});
        return std::make_unique<ChildProcess>(mmtest::requiredPath("MM_BIN"), arguments);
    }

    /// `mono InteropPeer.exe MODE OTHER_PORT SERVICE ARGS...`.
    std::unique_ptr<ChildProcess> peer(const std::string& mode, std::vector<std::string> arguments) {
        std::vector<std::string> all{mmtest::requiredPath("MM_DOTNET_PEER"), mode, std::to_string(otherPort_), service_};
        all.insert(all.end(), arguments.begin(), arguments.end());
        return std::make_unique<ChildProcess>(mmtest::requiredPath("MM_MONO"), all);
    }

    /// Waits until a subscriber on the other gateway receives what the C++ side publishes on
    /// `probeSubject` (interest propagates through the mesh asynchronously).
    void publishProbesUntilSeen(Connection& connection, const std::string& probeSubject, ChildProcess& listener) {
        const bool seen = mmtest::waitUntil(kDeadline, [&] {
            connection.sendMessage(Message::create(), probeSubject);
            return listener.waitForLine("subject=" + probeSubject + " ", false, 100ms);
        });
        ASSERT_TRUE(seen) << listener.output();
    }

    std::string service_;
    std::unique_ptr<mmtest::Gateway> gateway_;
    std::unique_ptr<mmtest::Mesh> mesh_;
    int cppPort_ = 0;
    int otherPort_ = 0;
};

}  // namespace

TEST_P(Interop, CppPublishesRustListens) {
    auto listen = mm({"listen", "INTEROP.CPP.>"});
    ASSERT_TRUE(listen->waitForLine("mm: listening on INTEROP.CPP.>", true)) << listen->output();
    auto publisher = connect("publisher");
    publishProbesUntilSeen(*publisher, "INTEROP.CPP.probe", *listen);
    publisher->sendMessage(mmtest::allTypes(), "INTEROP.CPP.data", "INTEROP.REPLY.CPP");
    ASSERT_TRUE(listen->waitForLine(" subject=INTEROP.CPP.data reply=INTEROP.REPLY.CPP message={")) << listen->output();
    ASSERT_TRUE(listen->waitForLine("    tag:str=\"b\"")) << listen->output();
    EXPECT_EQ(mmMessageLines(listen->stdoutLines(), "INTEROP.CPP.data"), kMmLines) << listen->output();
}

TEST_P(Interop, RustPublishesCppSubscribes) {
    auto subscriber = connect("subscriber");
    Collector inbox;
    auto subscription = subscriber->subscribe("INTEROP.RUST.>", inbox.callback());
    subscriber->flushMesh();
    auto send = mm({"send", "INTEROP.RUST.x", "text=Gr\u00fc\u00dfe aus K\u00f6ln \U0001F680", "n=42", "big=5000000000",
                    "huge=18446744073709551615", "px=2.5", "ok=true", "qty:u32=7", "neg:i64=-1", "label:str=42",
                    "data:blob=deadbeef00", "--reply", "INTEROP.ANSWER"});
    ASSERT_EQ(send->waitForExit(), 0) << send->output();
    ASSERT_TRUE(inbox.waitFor(1));
    const auto delivery = inbox.all()[0];
    EXPECT_EQ(delivery.subject, "INTEROP.RUST.x");
    EXPECT_EQ(delivery.replySubject, "INTEROP.ANSWER");
    const Message& m = *delivery.message;
    EXPECT_EQ(m.getString("text"), "Gr\u00fc\u00dfe aus K\u00f6ln \U0001F680");
    EXPECT_EQ(m.getSignedInt32("n"), 42);
    EXPECT_EQ(m.getSignedInt64("big"), 5000000000LL);
    EXPECT_EQ(m.getUnsignedInt64("huge"), 18446744073709551615ULL);
    EXPECT_EQ(m.getDouble("px"), 2.5);
    EXPECT_TRUE(m.getBool("ok"));
    EXPECT_EQ(m.getUnsignedInt32("qty"), 7u);
    EXPECT_EQ(m.getSignedInt64("neg"), -1);
    EXPECT_EQ(m.getString("label"), "42");
    const uint8_t data[] = {0xde, 0xad, 0xbe, 0xef, 0x00};
    EXPECT_EQ(*m.getBLOB("data"), *BLOB::create_copy(data, sizeof data));
    EXPECT_EQ(m.getFieldCount(), 10u);
}

TEST_P(Interop, CppRequestsRustReplies) {
    auto reply = mm({"reply", "INTEROP.Echo"});
    ASSERT_TRUE(reply->waitForLine("mm: answering requests on INTEROP.Echo", true)) << reply->output();
    auto requester = connect("requester");
    MessagePtr answer;
    // Across the mesh the responder's interest reaches gateway 1 a moment later: until then the
    // gateway answers NO_RESPONDERS at once, and sendRequest returns nullptr.
    ASSERT_TRUE(mmtest::waitUntil(kDeadline, [&] {
        answer = requester->sendRequest("INTEROP.Echo", mmtest::allTypes(), 10.0);
        return answer != nullptr;
    })) << reply->output();
    EXPECT_EQ(*answer, *mmtest::allTypes()) << *answer;
}

TEST_P(Interop, RustRequestsCppReplies) {
    auto responder = connect("responder");
    auto service = responder->subscribe("INTEROP.Echo", echo());
    responder->flushMesh();
    // The first request of `mm request`'s fresh connection gets its reply across the mesh too:
    // the library confirms its inbox mesh-wide first.
    auto request = mm({"request", "INTEROP.Echo", "A:f64=0.5", "who=rust", "n:u64=18446744073709551615", "--timeout", "3",
                       "--json-output"});
    const int exitCode = request->waitForExit();
    ASSERT_EQ(exitCode, 0) << request->output();
    const std::vector<std::string> lines = request->stdoutLines();
    ASSERT_EQ(lines.size(), 1u) << request->output();
    EXPECT_NE(lines[0].find("\"message\":{\"A\":0.5,\"who\":\"rust\",\"n\":18446744073709551615,\"from\":\"cpp\"}"),
              std::string::npos)
        << lines[0];
}

TEST_P(Interop, CppPublishesCSharpListens) {
    auto listen = peer("listen", {"INTEROP.CS.>", "1"});
    ASSERT_TRUE(listen->waitForLine("listening")) << listen->output();
    auto publisher = connect("publisher");
    publisher->sendMessage(mmtest::allTypes(), "INTEROP.CS.data", "INTEROP.REPLY.CPP");
    ASSERT_EQ(listen->waitForExit(), 0) << listen->output();
    const auto stdout = listen->stdoutLines();
    EXPECT_NE(std::find(stdout.begin(), stdout.end(), "subject=INTEROP.CS.data reply=INTEROP.REPLY.CPP"), stdout.end())
        << listen->output();
    EXPECT_EQ(peerMessageLines(stdout, "INTEROP.CS.data"), kPeerLines) << listen->output();
}

TEST_P(Interop, CSharpPublishesCppSubscribes) {
    auto subscriber = connect("subscriber");
    Collector inbox;
    auto subscription = subscriber->subscribe("INTEROP.FROMCS.>", inbox.callback());
    subscriber->flushMesh();
    auto publish = peer("publish", {"INTEROP.FROMCS.data"});
    ASSERT_EQ(publish->waitForExit(), 0) << publish->output();
    ASSERT_TRUE(inbox.waitFor(1));
    const auto delivery = inbox.all()[0];
    EXPECT_EQ(delivery.subject, "INTEROP.FROMCS.data");
    EXPECT_EQ(delivery.replySubject, "INTEROP.REPLY.CS");
    EXPECT_EQ(*delivery.message, *mmtest::allTypes()) << *delivery.message;
    EXPECT_EQ(delivery.message->serialize(), mmtest::allTypes()->serialize());
}

TEST_P(Interop, CppRequestsCSharpReplies) {
    auto reply = peer("reply", {"INTEROP.CSEcho", "1"});
    ASSERT_TRUE(reply->waitForLine("answering")) << reply->output();
    auto requester = connect("requester");
    MessagePtr answer = requester->request("INTEROP.CSEcho", mmtest::allTypes(), 20s);
    auto expected = mmtest::allTypes();
    expected->addString("from", "csharp");
    EXPECT_EQ(*answer, *expected) << *answer;
    EXPECT_EQ(reply->waitForExit(), 0) << reply->output();
}

TEST_P(Interop, CSharpRequestsCppReplies) {
    auto responder = connect("responder");
    auto service = responder->subscribe("INTEROP.CppEcho", echo());
    responder->flushMesh();
    auto request = peer("request", {"INTEROP.CppEcho"});
    EXPECT_EQ(request->waitForExit(), 0) << request->output();
    EXPECT_TRUE(request->waitForLine("reply ok")) << request->output();
}

INSTANTIATE_TEST_SUITE_P(Topologies, Interop, ::testing::Values(Topology::OneGateway, Topology::Mesh),
                         [](const ::testing::TestParamInfo<Topology>& info) {
                             return info.param == Topology::Mesh ? std::string("AcrossAMesh")
                                                                 : std::string("OneGateway");
                         });
