// Sends a request to the adder service (see responder.cpp) and prints the reply.
//
//   requester [--gateway HOST[:PORT]] [--service NAME] [SUBJECT] [A] [B]
//
// Defaults: 127.0.0.1:5050, service DEFAULT, subject Service.Add, 1.5 + 2.25.
#include <chrono>
#include <iostream>

#include <messagingmesh/MessagingMesh.h>

#include "Options.h"

int main(int argc, char** argv) {
    using namespace std::chrono_literals;
    Options options(argc, argv, "requester example",
                    "usage: requester [--gateway HOST[:PORT]] [--service NAME] [SUBJECT] [A] [B]\n"
                    "Asks SUBJECT (default Service.Add) for A + B (default 1.5 + 2.25) and prints the answer.\n"
                    "Defaults: 127.0.0.1:5050, service DEFAULT.");
    const std::string subject = options.arg(0, "Service.Add");
    const double a = std::stod(options.arg(1, "1.5"));
    const double b = std::stod(options.arg(2, "2.25"));
    try {
        MessagingMesh::Connection connection(options.params);
        auto request = MessagingMesh::Message::create();
        request->addDouble("A", a).addDouble("B", b);
        MessagingMesh::MessagePtr reply = connection.request(subject, request, 5s);
        std::cout << a << " + " << b << " = " << reply->getDouble("sum") << std::endl;
        return 0;
    } catch (const MessagingMesh::NoRespondersException&) {
        std::cerr << "nobody answers requests on " << subject << std::endl;
    } catch (const MessagingMesh::TimeoutException&) {
        std::cerr << "no reply from " << subject << " within 5 s" << std::endl;
    } catch (const MessagingMesh::Exception& error) {
        std::cerr << "requester: " << error.what() << std::endl;
    }
    return 1;
}
