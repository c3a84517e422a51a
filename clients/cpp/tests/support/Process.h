// Test support: child processes (real gateways, the Rust mm tool, the C# peer, examples) with
// their output captured line by line, and a two-gateway mesh.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mmtest {

using namespace std::chrono_literals;

/// A generous deadline for anything that waits on another process (the machine is shared).
constexpr std::chrono::milliseconds kDeadline = 30s;

/// Polls `condition` every few milliseconds until it holds or `timeout` passes.
bool waitUntil(std::chrono::milliseconds timeout, const std::function<bool()>& condition);

/// An environment variable, or `fallback`.
std::string env(const char* name, const std::string& fallback = "");

/// A path given by the build (environment variable set by CTest); fails the test when missing.
std::string requiredPath(const char* variable);

/// A TCP port that was free a moment ago.
int freePort();

/// A child process with stdout and stderr captured.
class ChildProcess {
public:
    ChildProcess(const std::string& program, const std::vector<std::string>& arguments);
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    /// Waits until a stdout (or stderr) line contains `text`; false at the deadline or exit.
    bool waitForLine(const std::string& text, bool onStderr = false, std::chrono::milliseconds timeout = kDeadline);
    /// Waits for the exit; the exit code, or -1 at the deadline (the process is then killed).
    int waitForExit(std::chrono::milliseconds timeout = kDeadline);
    /// Sends a signal.
    void signal(int signal) const;
    /// Stdout lines so far.
    std::vector<std::string> stdoutLines() const;
    /// Everything written so far, for failure messages.
    std::string output() const;
    int pid() const { return pid_; }
    bool running();

private:
    void drain(int fd, bool isStderr);
    int pid_ = -1;
    int status_ = -1;
    bool exited_ = false;
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<std::string> stdout_;
    std::vector<std::string> stderr_;
    int openStreams_ = 2;
    std::thread stdoutThread_;
    std::thread stderrThread_;
};

/// A real mm-gateway on 127.0.0.1. Port 0 picks a free one, read from its first stdout line.
class Gateway {
public:
    explicit Gateway(int port = 0, const std::vector<std::string>& extra = {});
    ~Gateway();
    int port() const { return port_; }
    /// Kills it at once (SIGKILL), as a crash would.
    void kill();
    std::string log() const { return process_ ? process_->output() : std::string(); }

private:
    std::unique_ptr<ChildProcess> process_;
    int port_ = 0;
};

/// Two gateways meshed for `service` (each dials the other), fully linked when constructed.
class Mesh {
public:
    explicit Mesh(const std::string& service);
    ~Mesh();
    int port(std::size_t index) const { return gateways_.at(index)->port(); }

private:
    std::vector<std::unique_ptr<Gateway>> gateways_;
    std::string configPath_;
};

}  // namespace mmtest
