// The command line every example takes:
//
//   [--gateway HOST[:PORT]] [--service NAME] [--count N] [--help] ARGUMENT...
//
// HOST alone means port 5050; the defaults are 127.0.0.1:5050 and the service DEFAULT, as for
// every Messaging Mesh client and the mm tool. --help prints the example's usage on stdout and
// exits 0; an unknown option or a bad value prints why and exits 2. "--" ends the options.
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

    Options(int argc, char** argv, const std::string& clientName, const std::string& usage) : usage_(usage) {
        params.ClientID = clientName;
        bool optionsEnded = false;
        for (int i = 1; i < argc; ++i) {
            const std::string argument = argv[i];
            if (optionsEnded || argument.size() < 2 || argument[0] != '-') {
                positional.push_back(argument);
            } else if (argument == "--") {
                optionsEnded = true;
            } else if (argument == "--help" || argument == "-h") {
                std::cout << usage_ << "\n";
                std::exit(0);
            } else if (argument == "--gateway") {
                setGateway(value(argc, argv, i));
            } else if (argument == "--service") {
                params.Service = value(argc, argv, i);
            } else if (argument == "--count") {
                const std::string text = value(argc, argv, i);
                char* end = nullptr;
                count = std::strtol(text.c_str(), &end, 10);
                if (text.empty() || *end != '\0' || count <= 0) fail("--count needs a positive number");
            } else {
                fail("unknown option " + argument);
            }
        }
    }

    std::string arg(std::size_t index, const std::string& fallback) const {
        return index < positional.size() ? positional[index] : fallback;
    }

private:
    std::string usage_;

    std::string value(int argc, char** argv, int& i) {
        if (i + 1 >= argc) fail(std::string(argv[i]) + " needs a value");
        return argv[++i];
    }

    // HOST, HOST:PORT, [IPv6] or [IPv6]:PORT; HOST alone means port 5050.
    void setGateway(const std::string& address) {
        std::string host = address;
        std::string port;
        bool hasPort = false;
        if (!address.empty() && address[0] == '[') {
            const auto close = address.find(']');
            if (close == std::string::npos) fail("--gateway " + address + ": missing ']'");
            host = address.substr(1, close - 1);
            if (close + 1 < address.size()) {
                if (address[close + 1] != ':') fail("--gateway " + address + ": expected ':' after ']'");
                port = address.substr(close + 2);
                hasPort = true;
            }
        } else if (address.find(':') != std::string::npos && address.find(':') == address.rfind(':')) {
            const auto colon = address.find(':');
            host = address.substr(0, colon);
            port = address.substr(colon + 1);
            hasPort = true;
        }
        long number = 5050;
        if (hasPort) {
            char* end = nullptr;
            number = std::strtol(port.c_str(), &end, 10);
            if (port.empty() || *end != '\0' || number < 1 || number > 65535) {
                fail("--gateway " + address + ": the port must be a number from 1 to 65535");
            }
        }
        if (host.empty()) fail("--gateway " + address + ": the host is missing");
        params.GatewayHost = host;
        params.GatewayPort = static_cast<int>(number);
    }

    [[noreturn]] void fail(const std::string& problem) const {
        std::cerr << problem << "\n" << usage_ << "\n";
        std::exit(2);
    }
};
