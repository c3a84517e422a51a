// Logger: where the library's log lines go.
#pragma once

#include <functional>
#include <string>

namespace MessagingMesh {

/// The library's log: connection life cycle, recovered errors, exceptions thrown by callbacks.
/// Without a registered callback, lines are dropped.
class Logger {
public:
    enum LogLevel {
        LOG_LEVEL_DEBUG = 0,
        LOG_LEVEL_INFO = 1,
        LOG_LEVEL_WARN = 2,
        LOG_LEVEL_ERROR = 3,
        LOG_LEVEL_FATAL = 4,
    };
    using Callback = std::function<void(LogLevel level, const std::string& line)>;

    /// Sends every log line at or above the minimum level to `callback` (an empty function stops
    /// logging). It is called from library threads, one line at a time.
    static void registerCallback(Callback callback);
    /// Lines below this level are dropped (default LOG_LEVEL_INFO).
    static void setMinimumLevel(LogLevel level);
    /// Logs a line (as the library does).
    static void log(LogLevel level, const std::string& line);
    /// The level's name, e.g. "WARN".
    static const char* levelName(LogLevel level) noexcept;
};

}  // namespace MessagingMesh
