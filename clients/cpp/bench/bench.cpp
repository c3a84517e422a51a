// Throughput of the C++ client, measured like `mm bench` measures the Rust library: one BLOB
// field `p` of --size bytes on subject bench.x, the message built once.
//
//   messagingmesh_bench pub    [--gateway HOST:PORT] [--service NAME] [--size N] [--count N]
//   messagingmesh_bench pubsub [--gateway HOST:PORT] [--service NAME] [--size N] [--count N]
//
// pub: one connection publishes --count messages with no subscriber; the rate is counted until
// the gateway confirmed it processed them all (flush). pubsub: one publishing and one subscribing
// connection in this process; the rate is counted from the first send to the last receipt, and a
// missing message fails the run. Prints one JSON line.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <messagingmesh/MessagingMesh.h>

using namespace MessagingMesh;
using Clock = std::chrono::steady_clock;

namespace {

ConnectionParams benchParams(const std::string& address, const std::string& service, const std::string& name) {
    ConnectionParams params;
    const auto colon = address.rfind(':');
    params.GatewayHost = address.substr(0, colon);
    params.GatewayPort = std::atoi(address.c_str() + colon + 1);
    params.Service = service;
    params.ClientID = name;
    // As `mm bench`: a lost connection fails the run, and a burst is measured, not dropped.
    params.Reconnect = false;
    params.PendingMessagesLimit = 16u << 20;
    params.PendingBytesLimit = 1u << 30;
    return params;
}

void report(const std::string& mode, std::size_t size, uint64_t count, Clock::duration elapsed) {
    const double seconds = std::chrono::duration<double>(elapsed).count();
    const double rate = static_cast<double>(count) / seconds;
    std::cout << "{\"client\":\"C++\",\"mode\":\"" << mode << "\",\"size\":" << size << ",\"count\":" << count
              << ",\"seconds\":" << seconds << ",\"messages_per_second\":" << static_cast<uint64_t>(rate)
              << ",\"payload_megabytes_per_second\":" << rate * static_cast<double>(size) / 1e6 << "}" << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
    std::string mode = argc > 1 ? argv[1] : "pubsub";
    std::string address = "127.0.0.1:5050";
    std::string service = "BENCH";
    std::size_t size = 16;
    uint64_t count = 5000000;
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string option = argv[i];
        if (option == "--gateway") address = argv[i + 1];
        else if (option == "--service") service = argv[i + 1];
        else if (option == "--size") size = std::strtoull(argv[i + 1], nullptr, 10);
        else if (option == "--count") count = std::strtoull(argv[i + 1], nullptr, 10);
        else {
            std::cerr << "unknown option " << option << std::endl;
            return 2;
        }
    }
    try {
        auto message = Message::create();
        const std::vector<uint8_t> payload(size, 0x5a);
        message->addBLOB("p", payload.data(), payload.size());
        Connection publisher(benchParams(address, service, "bench-pub-cpp"));

        if (mode == "pub") {
            const auto start = Clock::now();
            for (uint64_t i = 0; i < count; ++i) publisher.sendMessage(*message, "bench.x");
            publisher.flush(std::chrono::seconds(120));
            report(mode, size, count, Clock::now() - start);
            const ConnectionStats stats = publisher.getStats();
            std::cerr << "frames per write: " << static_cast<double>(stats.FramesOut) / static_cast<double>(stats.WriteCalls)
                      << std::endl;
            return 0;
        }
        if (mode != "pubsub") {
            std::cerr << "mode is pub or pubsub" << std::endl;
            return 2;
        }
        Connection subscriber(benchParams(address, service, "bench-sub-cpp"));
        // The count lives on the heap in a cache line of its own (as `mm bench`'s counter does):
        // on the stack it shares a line with the publishing loop's variables, and every message
        // would then move that line between the two cores.
        struct alignas(64) Counter {
            std::atomic<uint64_t> value{0};
        };
        const auto counter = std::make_unique<Counter>();
        std::atomic<uint64_t>& received = counter->value;
        std::mutex mutex;
        std::condition_variable done;
        Clock::time_point last;
        auto subscription = subscriber.subscribe(
            "bench.x", [&](Connection&, const std::string&, const std::string&, MessagePtr, void*) {
                if (received.fetch_add(1, std::memory_order_relaxed) + 1 == count) {
                    std::lock_guard<std::mutex> lock(mutex);
                    last = Clock::now();
                    done.notify_all();
                }
            });
        subscriber.flush();
        const auto start = Clock::now();
        for (uint64_t i = 0; i < count; ++i) publisher.sendMessage(*message, "bench.x");
        publisher.flush(std::chrono::seconds(120));
        std::unique_lock<std::mutex> lock(mutex);
        if (!done.wait_for(lock, std::chrono::seconds(120), [&] { return received.load() >= count; })) {
            std::cerr << "only " << received.load() << " of " << count << " messages arrived" << std::endl;
            return 1;
        }
        report(mode, size, count, last - start);
    } catch (const Exception& error) {
        std::cerr << "bench: " << error.what() << std::endl;
        return 1;
    }
    return 0;
}
