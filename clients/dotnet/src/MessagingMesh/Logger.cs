using System;

namespace MessagingMesh
{
    /// <summary>
    /// Where the library's log lines go. Register a callback to receive them; without one,
    /// warnings and errors are written to standard error and the rest is discarded.
    /// </summary>
    /// <remarks>
    /// The callback can be called from any of the library's threads, the socket reader included,
    /// so it must be quick and must not block (hand the line to your logging framework and
    /// return). An exception thrown by the callback is swallowed.
    /// </remarks>
    public static class Logger
    {
        /// <summary>Severity of a log line.</summary>
        public enum LogLevel
        {
            /// <summary>Detail for debugging the library or the protocol.</summary>
            Debug = 0,
            /// <summary>Normal events: connected, reconnected.</summary>
            Info = 1,
            /// <summary>Something went wrong that the library recovered from.</summary>
            Warning = 2,
            /// <summary>Something went wrong that the application should know about.</summary>
            Error = 3,
        }

        private static volatile Action<LogLevel, string> callback;

        /// <summary>Lines below this level are not produced at all. Default <see cref="LogLevel.Info"/>.</summary>
        public static LogLevel MinimumLevel { get; set; }

        static Logger()
        {
            MinimumLevel = LogLevel.Info;
        }

        /// <summary>Sends every log line at or above <see cref="MinimumLevel"/> to
        /// <paramref name="logCallback"/>; null restores the default (standard error).</summary>
        public static void RegisterCallback(Action<LogLevel, string> logCallback)
        {
            callback = logCallback;
        }

        /// <summary>Whether lines at <paramref name="level"/> are produced.</summary>
        public static bool IsEnabled(LogLevel level)
        {
            return level >= MinimumLevel;
        }

        /// <summary>Logs at <see cref="LogLevel.Debug"/>.</summary>
        public static void Debug(string message) { Log(LogLevel.Debug, message); }

        /// <summary>Logs at <see cref="LogLevel.Info"/>.</summary>
        public static void Info(string message) { Log(LogLevel.Info, message); }

        /// <summary>Logs at <see cref="LogLevel.Warning"/>.</summary>
        public static void Warning(string message) { Log(LogLevel.Warning, message); }

        /// <summary>Logs at <see cref="LogLevel.Error"/>.</summary>
        public static void Error(string message) { Log(LogLevel.Error, message); }

        /// <summary>Logs one line.</summary>
        public static void Log(LogLevel level, string message)
        {
            if (level < MinimumLevel) return;
            var target = callback;
            try
            {
                if (target != null)
                {
                    target(level, message);
                }
                else if (level >= LogLevel.Warning)
                {
                    Console.Error.WriteLine("messaging-mesh " + level.ToString().ToLowerInvariant()
                                            + ": " + message);
                }
            }
            catch (Exception)
            {
                // A failing log sink must not take the library's threads down with it.
            }
        }
    }
}
