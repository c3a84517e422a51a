// The command line every example takes: [--gateway HOST:PORT] [--service NAME] [--count N]
// and positional arguments.
#pragma once

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <messagingmesh/MessagingMesh.h>

struct Options {
    MessagingMesh::ConnectionParams params;
    long count = -1;  // --count: stop after this many messages (-1: run until stopped)
    std::vector<std::string> positional;

    Options(int argc, char** argv, const std::string& clientName) {
        params.ClientID = clientName;
        for (int i = 1; i < argc; ++i) {
            const std::string argument = argv[i];
            if (argument == "--gateway" && i + 1 < argc) {
                const std::string address = argv[++i];
                const auto colon = address.rfind(':');
                params.GatewayHost = address.substr(0, colon);
                params.GatewayPort = colon == std::string::npos ? 5050 : std::atoi(address.c_str() + colon + 1);
            } else if (argument == "--service" && i + 1 < argc) {
                params.Service = argv[++i];
            } else if (argument == "--count" && i + 1 < argc) {
                count = std::atol(argv[++i]);
            } else if (argument == "--help" || argument == "-h") {
                std::cerr << "options: [--gateway HOST:PORT] [--service NAME] [--count N] (defaults 127.0.0.1:5050, DEFAULT)\n";
                std::exit(0);
            } else {
                positional.push_back(argument);
            }
        }
    }

    std::string arg(std::size_t index, const std::string& fallback) const {
        return index < positional.size() ? positional[index] : fallback;
    }
};
