#include "messagingmesh/Logger.h"

#include <atomic>
#include <memory>
#include <mutex>

namespace MessagingMesh {

namespace {

struct Registry {
    std::mutex mutex;
    std::shared_ptr<const Logger::Callback> callback;
    std::atomic<int> minimum{Logger::LOG_LEVEL_INFO};
};

Registry& registry() {
    static Registry instance;
    return instance;
}

}  // namespace

void Logger::registerCallback(Callback callback) {
    auto shared = callback ? std::make_shared<const Callback>(std::move(callback)) : nullptr;
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    r.callback = std::move(shared);
}

void Logger::setMinimumLevel(LogLevel level) { registry().minimum.store(level); }

void Logger::log(LogLevel level, const std::string& line) {
    Registry& r = registry();
    if (level < r.minimum.load()) {
        return;
    }
    std::shared_ptr<const Callback> callback;
    {
        std::lock_guard<std::mutex> lock(r.mutex);
        callback = r.callback;
    }
    if (!callback) {
        return;
    }
    try {
        (*callback)(level, line);
    } catch (...) {
        // A logger that throws must not take the library down; there is nowhere left to report it.
    }
}

const char* Logger::levelName(LogLevel level) noexcept {
    switch (level) {
        case LOG_LEVEL_DEBUG: return "DEBUG";
        case LOG_LEVEL_INFO: return "INFO";
        case LOG_LEVEL_WARN: return "WARN";
        case LOG_LEVEL_ERROR: return "ERROR";
        case LOG_LEVEL_FATAL: return "FATAL";
    }
    return "UNKNOWN";
}

}  // namespace MessagingMesh
