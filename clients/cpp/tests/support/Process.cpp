#include "Collector.h"
#include "Process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <atomic>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>
#include <messagingmesh/MessagingMesh.h>

extern char** environ;

namespace mmtest {

bool waitUntil(std::chrono::milliseconds timeout, const std::function<bool()>& condition) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

std::string env(const char* name, const std::string& fallback) {
    const char* value = std::getenv(name);
    return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

namespace {

/// The path the build compiled in for an MM_* variable.
std::string builtInPath(const std::string& variable) {
    if (variable == "MM_GATEWAY_BIN") return MM_DEFAULT_GATEWAY_BIN;
    if (variable == "MM_BIN") return MM_DEFAULT_MM_BIN;
    if (variable == "MM_TESTDATA") return MM_DEFAULT_TESTDATA;
    if (variable == "MM_DOTNET_PEER") return MM_DEFAULT_DOTNET_PEER;
    if (variable == "MM_MONO") return MM_DEFAULT_MONO;
    if (variable == "MM_EXAMPLES_DIR") return MM_DEFAULT_EXAMPLES_DIR;
    return "";
}

}  // namespace

std::string uniqueService(const std::string& prefix) {
    static std::atomic<int> next{0};
    return prefix + std::to_string(getpid()) + "X" + std::to_string(++next);
}

std::string requiredPath(const char* variable) {
    const std::string path = env(variable, builtInPath(variable));
    if (path.empty() || access(path.c_str(), R_OK) != 0) {
        throw std::runtime_error(std::string(variable) + " is not set to an existing file (got `" + path +
                                 "`): run the tests through ctest, after `cargo build --bins`");
    }
    return path;
}

int freePort() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        throw std::runtime_error("cannot bind a socket to find a free port");
    }
    socklen_t length = sizeof address;
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    close(fd);
    return ntohs(address.sin_port);
}

ChildProcess::ChildProcess(const std::string& program, const std::vector<std::string>& arguments) {
    int out[2];
    int err[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
        throw std::runtime_error("pipe failed");
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(program.c_str()));
    for (const std::string& argument : arguments) {
        argv.push_back(const_cast<char*>(argument.c_str()));
    }
    argv.push_back(nullptr);
    const int failed = posix_spawnp(&pid_, program.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    close(err[1]);
    if (failed != 0) {
        close(out[0]);
        close(err[0]);
        throw std::runtime_error("cannot start " + program);
    }
    stdoutThread_ = std::thread([this, fd = out[0]] { drain(fd, false); });
    stderrThread_ = std::thread([this, fd = err[0]] { drain(fd, true); });
}

ChildProcess::~ChildProcess() {
    if (running()) {
        signal(SIGKILL);
    }
    waitForExit(10s);
    if (stdoutThread_.joinable()) stdoutThread_.join();
    if (stderrThread_.joinable()) stderrThread_.join();
}

void ChildProcess::drain(int fd, bool isStderr) {
    std::string pending;
    char buffer[4096];
    for (;;) {
        const ssize_t count = read(fd, buffer, sizeof buffer);
        if (count <= 0) {
            break;
        }
        pending.append(buffer, static_cast<std::size_t>(count));
        std::size_t newline;
        while ((newline = pending.find('\n')) != std::string::npos) {
            std::lock_guard<std::mutex> lock(mutex_);
            (isStderr ? stderr_ : stdout_).push_back(pending.substr(0, newline));
            pending.erase(0, newline + 1);
            changed_.notify_all();
        }
    }
    close(fd);
    std::lock_guard<std::mutex> lock(mutex_);
    if (!pending.empty()) {
        (isStderr ? stderr_ : stdout_).push_back(pending);
    }
    --openStreams_;
    changed_.notify_all();
}

bool ChildProcess::waitForLine(const std::string& text, bool onStderr, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] {
        for (const std::string& line : onStderr ? stderr_ : stdout_) {
            if (line.find(text) != std::string::npos) return true;
        }
        return openStreams_ == 0;
    }) && [&] {
        for (const std::string& line : onStderr ? stderr_ : stdout_) {
            if (line.find(text) != std::string::npos) return true;
        }
        return false;
    }();
}

bool ChildProcess::running() {
    if (exited_) return false;
    int status = 0;
    const pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
        exited_ = true;
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return false;
    }
    return done == 0;
}

int ChildProcess::waitForExit(std::chrono::milliseconds timeout) {
    if (!waitUntil(timeout, [this] { return !running(); })) {
        signal(SIGKILL);
        waitUntil(10s, [this] { return !running(); });
        return -1;
    }
    // The pipes close with the process (unless it left children holding them).
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait_for(lock, 10s, [this] { return openStreams_ == 0; });
    return status_;
}

void ChildProcess::signal(int number) const {
    if (!exited_) ::kill(pid_, number);
}

std::vector<std::string> ChildProcess::stdoutLines() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stdout_;
}

std::string ChildProcess::output() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::ostringstream text;
    text << "--- stdout\n";
    for (const std::string& line : stdout_) text << line << '\n';
    text << "--- stderr\n";
    for (const std::string& line : stderr_) text << line << '\n';
    return text.str();
}

Gateway::Gateway(int port, const std::vector<std::string>& extra) {
    std::vector<std::string> arguments{"--port", std::to_string(port), "--bind", "127.0.0.1"};
    arguments.insert(arguments.end(), extra.begin(), extra.end());
    const std::string prefix = "mm-gateway listening on ";
    for (int attempt = 0; attempt < 50; ++attempt) {
        process_ = std::make_unique<ChildProcess>(requiredPath("MM_GATEWAY_BIN"), arguments);
        if (process_->waitForLine(prefix)) {
            for (const std::string& line : process_->stdoutLines()) {
                if (line.rfind(prefix, 0) == 0) {
                    port_ = std::stoi(line.substr(line.rfind(':') + 1));
                    return;
                }
            }
        }
        const std::string log = process_->output();
        process_.reset();
        // A fixed port may still be held by the previous gateway's socket for a moment.
        if (port == 0 || log.find("in use") == std::string::npos) {
            throw std::runtime_error("mm-gateway did not start:\n" + log);
        }
        std::this_thread::sleep_for(100ms);
    }
    throw std::runtime_error("port " + std::to_string(port) + " stayed in use");
}

Gateway::~Gateway() {
    if (process_ && process_->running()) {
        process_->signal(SIGTERM);
        if (process_->waitForExit(10s) == -1) {
            ADD_FAILURE() << "the gateway did not stop on SIGTERM";
        }
    }
}

void Gateway::kill() {
    process_->signal(SIGKILL);
    process_->waitForExit(10s);
}

Mesh::Mesh(const std::string& service) {
    for (int attempt = 0; attempt < 5 && gateways_.empty(); ++attempt) {
        const int ports[2] = {freePort(), freePort()};
        configPath_ = "/tmp/mm-cpp-mesh-" + std::to_string(getpid()) + "-" + std::to_string(attempt) + ".json";
        std::ofstream(configPath_) << "{ \"CoordinatorGateway\": \"\", \"StartupMeshes\": [ { \"Name\": \"" << service
                                   << "\", \"DiscoverMeshUsingCoordinator\": false, \"MeshGateways\": [\"127.0.0.1:"
                                   << ports[0] << "\", \"127.0.0.1:" << ports[1] << "\"] } ] }";
        try {
            for (int index = 0; index < 2; ++index) {
                gateways_.push_back(std::make_unique<Gateway>(
                    ports[index],
                    std::vector<std::string>{"--name", "gw" + std::to_string(index + 1), "--config", configPath_}));
            }
        } catch (const std::exception& error) {
            gateways_.clear();
            if (std::string(error.what()).find("in use") == std::string::npos) throw;
        }
    }
    if (gateways_.empty()) {
        throw std::runtime_error("could not start the mesh");
    }
    // Fully linked: each gateway reports one dialled and one accepted link in _MM.STATS.
    for (std::size_t index = 0; index < gateways_.size(); ++index) {
        MessagingMesh::ConnectionParams params;
        params.GatewayPort = gateways_[index]->port();
        params.Service = service;
        params.ClientID = "mesh-check";
        MessagingMesh::Connection connection(params);
        const bool linked = waitUntil(kDeadline, [&] {
            auto stats = connection.sendRequest("_MM.STATS", MessagingMesh::Message::create(), 5.0);
            if (!stats) return false;
            int dialled = 0;
            int accepted = 0;
            for (const auto& field : *stats) {
                if (field->getName() != "link" || field->getFieldType() != MessagingMesh::Field::MESSAGE) continue;
                const std::string direction = field->getMessage()->getString("direction");
                dialled += direction == "dialled";
                accepted += direction == "accepted";
            }
            return dialled == 1 && accepted == 1;
        });
        if (!linked) {
            throw std::runtime_error("the mesh did not link up:\n" + gateways_[index]->log());
        }
    }
}

Mesh::~Mesh() {
    gateways_.clear();
    std::remove(configPath_.c_str());
}

}  // namespace mmtest

// Sanitizer settings for this test binary (used only when it is built with them).
extern "C" const char* __ubsan_default_options() { return "print_stacktrace=1:halt_on_error=1"; }
extern "C" const char* __asan_default_options() { return "detect_leaks=1"; }
