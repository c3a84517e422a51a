// Builds a message with the C++ API, encodes and decodes it: proves headers and libraries are found.
#include <iostream>

#include <messagingmesh/MessagingMesh.h>

int main() {
    auto message = MessagingMesh::Message::create();
    message->addString("sym", "IBM").addDouble("px", 123.4);
    auto copy = MessagingMesh::Message::deserialize(message->serialize());
    std::cout << "C++ " << MessagingMesh::Connection::getVersion() << " " << *copy << std::endl;
    return *copy == *message ? 0 : 1;
}
