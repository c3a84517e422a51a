// Answers requests: replies to {A: double, B: double} with {sum: A + B}.
//
//   responder [--gateway HOST[:PORT]] [--service NAME] [--count N] [SUBJECT]
//
// Defaults: 127.0.0.1:5050, service DEFAULT, subject Service.Add. Runs until standard input
// closes, or until it answered --count requests.
#include <atomic>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <thread>

#include <messagingmesh/MessagingMesh.h>

#include "Options.h"

int main(int argc, char** argv) {
    Options options(argc, argv, "responder example",
                    "usage: responder [--gateway HOST[:PORT]] [--service NAME] [--count N] [SUBJECT]\n"
                    "Answers {A, B} with {sum: A + B} on SUBJECT (default Service.Add) until standard input\n"
                    "closes, or --count requests were answered. Defaults: 127.0.0.1:5050, service DEFAULT.");
    const std::string subject = options.arg(0, "Service.Add");
    std::mutex mutex;
    std::condition_variable done;
    long answered = 0;
    try {
        MessagingMesh::Connection connection(options.params);
        // Callbacks run on the connection's dispatch thread (the default dispatch mode).
        auto subscription = connection.subscribe(
            subject, [&](MessagingMesh::Connection& c, const std::string&, const std::string& replySubject,
                         MessagingMesh::MessagePtr request, void*) {
                if (replySubject.empty()) return;  // a plain publish: nobody to answer
                auto reply = MessagingMesh::Message::create();
                auto a = request->tryGetDouble("A");
                auto b = request->tryGetDouble("B");
                if (a && b) {
                    reply->addDouble("sum", *a + *b);
                } else {
                    reply->addString("error", "expected doubles A and B, got " + request->toString());
                }
                c.sendReply(reply, replySubject);
                std::lock_guard<std::mutex> lock(mutex);
                ++answered;
                done.notify_all();
            });
        connection.flush();
        std::cout << "answering requests on " << subject << std::endl;
        if (options.count > 0) {
            std::unique_lock<std::mutex> lock(mutex);
            done.wait(lock, [&] { return answered >= options.count; });
            lock.unlock();
            connection.flush();  // the last reply is on its way before we disconnect
        } else {
            std::string line;
            while (std::getline(std::cin, line)) {
            }
        }
    } catch (const MessagingMesh::Exception& error) {
        std::cerr << "responder: " << error.what() << std::endl;
        return 1;
    }
    return 0;
}
