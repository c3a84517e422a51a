// Prints every message on the given subject patterns, one line each (like tibrvlisten).
//
//   listen [--gateway HOST[:PORT]] [--service NAME] [--count N] PATTERN...
//
// Defaults: 127.0.0.1:5050, service DEFAULT, pattern ">" (everything). With --count, exits
// after N messages. Lines look like:  PRICES.IBM [reply _INBOX.x.1] {seq=1 price=100.25}
#include <condition_variable>
#include <csignal>
#include <iostream>
#include <mutex>

#include <messagingmesh/MessagingMesh.h>

#include "Options.h"

namespace {
std::mutex mutex;
std::condition_variable done;
long seen = 0;
volatile std::sig_atomic_t interrupted = 0;
}  // namespace

int main(int argc, char** argv) {
    Options options(argc, argv, "listen",
                    "usage: listen [--gateway HOST[:PORT]] [--service NAME] [--count N] [PATTERN...]\n"
                    "Prints every message on the patterns (default \">\"), one line each, until interrupted.\n"
                    "Defaults: 127.0.0.1:5050, service DEFAULT. --count N: exit after N messages.");
    if (options.positional.empty()) options.positional.push_back(">");
    options.params.NotificationCallback = [](const MessagingMesh::Notification& notification) {
        if (notification.type != MessagingMesh::Notification::CONNECTED) {
            std::cerr << "listen: " << notification.text << std::endl;
        }
    };
    std::signal(SIGINT, [](int) { interrupted = 1; });
    try {
        MessagingMesh::Connection connection(options.params);
        std::vector<MessagingMesh::SubscriptionPtr> subscriptions;
        for (const std::string& pattern : options.positional) {
            subscriptions.push_back(connection.subscribe(
                pattern, [&options](MessagingMesh::Connection&, const std::string& subject, const std::string& reply,
                                    MessagingMesh::MessagePtr message, void*) {
                    std::lock_guard<std::mutex> lock(mutex);
                    std::cout << subject;
                    if (!reply.empty()) std::cout << " [reply " << reply << "]";
                    std::cout << " " << *message << std::endl;
                    if (options.count > 0 && ++seen >= options.count) done.notify_all();
                }));
        }
        connection.flush();
        std::cerr << "listening on";
        for (const std::string& pattern : options.positional) std::cerr << " " << pattern;
        std::cerr << " (service " << options.params.Service << ")" << std::endl;
        std::unique_lock<std::mutex> lock(mutex);
        while (!interrupted && !(options.count > 0 && seen >= options.count)) {
            done.wait_for(lock, std::chrono::milliseconds(200));
        }
    } catch (const MessagingMesh::Exception& error) {
        std::cerr << "listen: " << error.what() << std::endl;
        return 1;
    }
    return 0;
}
