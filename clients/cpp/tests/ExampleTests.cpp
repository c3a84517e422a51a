// The examples (C++ and C) run against a real gateway and do what their comments say.
#include <gtest/gtest.h>
#include <messagingmesh/MessagingMesh.h>

#include "Collector.h"
#include "Process.h"

using mmtest::ChildProcess;

namespace {

class Examples : public ::testing::Test {
protected:
    void SetUp() override {
        gateway_ = std::make_unique<mmtest::Gateway>();
        service_ = mmtest::uniqueService("EXAMPLES");
    }
    std::unique_ptr<ChildProcess> run(const std::string& example, std::vector<std::string> arguments) {
        arguments.insert(arguments.begin(),
                         {"--gateway", "127.0.0.1:" + std::to_string(gateway_->port()), "--service", service_});
        return std::make_unique<ChildProcess>(mmtest::requiredPath("MM_EXAMPLES_DIR") + "/" + example, arguments);
    }
    std::unique_ptr<mmtest::Gateway> gateway_;
    std::string service_;
};

bool contains(const std::vector<std::string>& lines, const std::string& text) {
    for (const std::string& line : lines) {
        if (line.find(text) != std::string::npos) return true;
    }
    return false;
}

}  // namespace

TEST_F(Examples, PublisherToListenAndSubscriber) {
    auto listen = run("listen", {"--count", "3", "EX.>"});
    auto subscriber = run("subscriber", {"EX.PRICES.*", "3"});
    ASSERT_TRUE(listen->waitForLine("listening on EX.>", true)) << listen->output();
    ASSERT_TRUE(subscriber->waitForLine("listening on EX.PRICES.*")) << subscriber->output();
    auto publisher = run("publisher", {"EX.PRICES.IBM", "3"});
    ASSERT_EQ(publisher->waitForExit(), 0) << publisher->output();
    EXPECT_TRUE(publisher->waitForLine("published 3 messages to EX.PRICES.IBM"));
    ASSERT_EQ(listen->waitForExit(), 0) << listen->output();
    ASSERT_EQ(subscriber->waitForExit(), 0) << subscriber->output();
    const auto lines = listen->stdoutLines();
    ASSERT_EQ(lines.size(), 3u) << listen->output();
    EXPECT_EQ(lines[0].rfind("EX.PRICES.IBM {seq=1 price=100.25 currency=\"USD\" time=", 0), 0u) << lines[0];
    EXPECT_TRUE(contains(subscriber->stdoutLines(), "EX.PRICES.IBM: price 100.75")) << subscriber->output();
}

TEST_F(Examples, RequesterAndResponder) {
    auto responder = run("responder", {"--count", "1", "EX.Add"});
    ASSERT_TRUE(responder->waitForLine("answering requests on EX.Add")) << responder->output();
    auto requester = run("requester", {"EX.Add", "1.5", "2.25"});
    ASSERT_EQ(requester->waitForExit(), 0) << requester->output();
    EXPECT_TRUE(requester->waitForLine("1.5 + 2.25 = 3.75")) << requester->output();
    EXPECT_EQ(responder->waitForExit(), 0) << responder->output();

    auto nobody = run("requester", {"EX.Nobody"});
    EXPECT_EQ(nobody->waitForExit(), 1);
    EXPECT_TRUE(nobody->waitForLine("nobody answers requests on EX.Nobody", true)) << nobody->output();
}

// Every example explains itself with --help (on stdout, exit 0, without connecting: the gateway
// address given is not listening) and refuses an option it does not know (exit 2).
TEST(ExamplesWithoutGateway, HelpAndUnknownOptions) {
    const std::string directory = mmtest::requiredPath("MM_EXAMPLES_DIR");
    for (const std::string example : {"listen", "publisher", "subscriber", "requester", "responder"}) {
        for (const std::string help : {"--help", "-h"}) {
            ChildProcess process(directory + "/" + example, {"--gateway", "127.0.0.1:1", help});
            ASSERT_EQ(process.waitForExit(), 0) << example << ": " << process.output();
            const auto lines = process.stdoutLines();
            ASSERT_FALSE(lines.empty()) << example;
            EXPECT_EQ(lines[0].rfind("usage: " + example + " [--gateway HOST[:PORT]] [--service NAME]", 0), 0u)
                << lines[0];
        }
        ChildProcess unknown(directory + "/" + example, {"--no-such-option"});
        EXPECT_EQ(unknown.waitForExit(), 2) << example << ": " << unknown.output();
        EXPECT_TRUE(unknown.waitForLine("unknown option --no-such-option", true)) << unknown.output();
    }
    ChildProcess c(directory + "/c_publish_subscribe", {"--help"});
    ASSERT_EQ(c.waitForExit(), 0) << c.output();
    EXPECT_EQ(c.stdoutLines().at(0).rfind("usage: c_publish_subscribe", 0), 0u) << c.output();
}

TEST_F(Examples, TheCProgram) {
    auto program = std::make_unique<ChildProcess>(mmtest::requiredPath("MM_EXAMPLES_DIR") + "/c_publish_subscribe",
                                                  std::vector<std::string>{"127.0.0.1:" + std::to_string(gateway_->port()),
                                                                           service_});
    ASSERT_EQ(program->waitForExit(), 0) << program->output();
    const auto lines = program->stdoutLines();
    EXPECT_TRUE(contains(lines, "received C.EXAMPLE.PRICES seq=3 {seq=3 sym=\"IBM\" px=103.0}")) << program->output();
    EXPECT_TRUE(contains(lines, "request: MM_STATUS_NO_RESPONDERS")) << program->output();
    EXPECT_TRUE(contains(lines, "done")) << program->output();
}
