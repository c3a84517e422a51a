// Publishes a few messages to a subject.
//
//   publisher [--gateway HOST[:PORT]] [--service NAME] [SUBJECT] [COUNT]
//
// Defaults: 127.0.0.1:5050, service DEFAULT, subject PRICES.IBM, 10 messages.
#include <chrono>
#include <iostream>

#include <messagingmesh/MessagingMesh.h>

#include "Options.h"

int main(int argc, char** argv) {
    Options options(argc, argv, "publisher example",
                    "usage: publisher [--gateway HOST[:PORT]] [--service NAME] [SUBJECT] [COUNT]\n"
                    "Publishes COUNT messages (default 10) to SUBJECT (default PRICES.IBM).\n"
                    "Defaults: 127.0.0.1:5050, service DEFAULT.");
    const std::string subject = options.arg(0, "PRICES.IBM");
    const int count = std::stoi(options.arg(1, "10"));
    try {
        MessagingMesh::Connection connection(options.params);
        for (int i = 1; i <= count; ++i) {
            auto message = MessagingMesh::Message::create();
            message->addSignedInt32("seq", i)
                .addDouble("price", 100 + i * 0.25)
                .addString("currency", "USD")
                .addSignedInt64("time", std::chrono::system_clock::now().time_since_epoch().count());
            connection.sendMessage(message, subject);
        }
        // Wait until the gateway has everything before disconnecting.
        connection.flush();
        std::cout << "published " << count << " messages to " << subject << std::endl;
    } catch (const MessagingMesh::Exception& error) {
        std::cerr << "publisher: " << error.what() << std::endl;
        return 1;
    }
    return 0;
}
