// Subscribes to a subject pattern and prints what arrives, in the queue dispatch mode: the main
// thread runs the callbacks by calling processMessageQueue.
//
//   subscriber [--gateway HOST[:PORT]] [--service NAME] [PATTERN] [COUNT]
//
// Defaults: 127.0.0.1:5050, service DEFAULT, pattern PRICES.>, stop after 10 messages.
#include <iostream>

#include <messagingmesh/MessagingMesh.h>

#include "Options.h"

int main(int argc, char** argv) {
    Options options(argc, argv, "subscriber example",
                    "usage: subscriber [--gateway HOST[:PORT]] [--service NAME] [PATTERN] [COUNT]\n"
                    "Prints the first COUNT messages (default 10) on PATTERN (default PRICES.>), running the\n"
                    "callbacks on the main thread (queue dispatch mode). Defaults: 127.0.0.1:5050, service DEFAULT.");
    options.params.MessageDispatch = MessagingMesh::PROCESS_MESSAGE_QUEUE;
    options.params.NotificationCallback = [](const MessagingMesh::Notification& notification) {
        std::cerr << "subscriber: " << notification.text << std::endl;
    };
    const std::string pattern = options.arg(0, "PRICES.>");
    const int wanted = std::stoi(options.arg(1, "10"));
    try {
        MessagingMesh::Connection connection(options.params);
        int received = 0;
        auto subscription = connection.subscribe(
            pattern, [&received](MessagingMesh::Connection&, const std::string& subject, const std::string&,
                                 MessagingMesh::MessagePtr message, void*) {
                ++received;
                if (auto price = message->tryGetDouble("price")) {
                    std::cout << subject << ": price " << *price << std::endl;
                } else {
                    std::cout << subject << ": " << *message << std::endl;
                }
            });
        connection.flush();
        std::cout << "listening on " << pattern << std::endl;
        while (received < wanted) {
            connection.processMessageQueue(1000, 100);
        }
    } catch (const MessagingMesh::Exception& error) {
        std::cerr << "subscriber: " << error.what() << std::endl;
        return 1;
    }
    return 0;
}
