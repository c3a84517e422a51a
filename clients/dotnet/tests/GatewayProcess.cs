using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Text;
using System.Threading;
using NUnit.Framework;

namespace MessagingMesh.Tests
{
    /// <summary>
    /// A real <c>mm-gateway</c> process. Started with <c>--port 0</c> (or a given port) on
    /// 127.0.0.1; the port is read from its first stdout line, <c>mm-gateway listening on
    /// ADDR:PORT</c>, so no test ever sleeps waiting for it. Stopped with SIGTERM on dispose.
    /// </summary>
    /// <summary>The gateway process exited, or never printed its port.</summary>
    internal sealed class GatewayStartException : Exception
    {
        internal GatewayStartException(string message) : base(message) { }
    }

    internal sealed class GatewayProcess : IDisposable
    {
        private const string ReadyPrefix = "mm-gateway listening on ";
        private const int StartTimeoutMs = 30000;

        private readonly Process process;
        private readonly StringBuilder log = new StringBuilder();
        private readonly Thread stdoutDrain;
        private readonly Thread stderrDrain;

        /// <summary>The port it listens on.</summary>
        internal int Port { get; private set; }

        /// <summary>
        /// The binary: <c>MM_GATEWAY_BIN</c> (set by test.sh), else <c>target/debug/mm-gateway</c>
        /// in the repository.
        /// </summary>
        internal static string BinaryPath
        {
            get
            {
                var path = Environment.GetEnvironmentVariable("MM_GATEWAY_BIN");
                if (string.IsNullOrEmpty(path))
                {
                    path = Path.Combine(Path.GetDirectoryName(TestData.Root), "target", "debug", "mm-gateway");
                }
                if (!File.Exists(path))
                {
                    Assert.Fail("mm-gateway not found at " + path
                                + ": build it with `cargo build --bin mm-gateway` or set MM_GATEWAY_BIN");
                }
                return path;
            }
        }

        internal GatewayProcess(int port = 0, params string[] extraArguments)
        {
            var arguments = new List<string> { "--port", port.ToString(), "--bind", "127.0.0.1" };
            arguments.AddRange(extraArguments);
            var start = new ProcessStartInfo(BinaryPath, string.Join(" ", arguments.ToArray()))
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = false,
            };
            process = Process.Start(start);
            var ready = new ManualResetEvent(false);
            string readyLine = null;
            stdoutDrain = new Thread(() =>
            {
                string line;
                while ((line = process.StandardOutput.ReadLine()) != null)
                {
                    if (readyLine == null && line.StartsWith(ReadyPrefix, StringComparison.Ordinal))
                    {
                        readyLine = line;
                        ready.Set();
                    }
                    lock (log) log.AppendLine(line);
                }
                ready.Set();
            }) { IsBackground = true, Name = "gateway stdout" };
            stderrDrain = new Thread(() =>
            {
                string line;
                while ((line = process.StandardError.ReadLine()) != null)
                {
                    lock (log) log.AppendLine(line);
                }
            }) { IsBackground = true, Name = "gateway stderr" };
            stdoutDrain.Start();
            stderrDrain.Start();
            if (!ready.WaitOne(StartTimeoutMs) || readyLine == null)
            {
                Stop(true);
                stdoutDrain.Join(5000);
                stderrDrain.Join(5000);
                throw new GatewayStartException("mm-gateway did not report its port within " + StartTimeoutMs
                                                + " ms:\n" + Log);
            }
            Port = int.Parse(readyLine.Substring(readyLine.LastIndexOf(':') + 1));
        }

        /// <summary>What the gateway wrote to stdout and stderr so far.</summary>
        internal string Log
        {
            get { lock (log) return log.ToString(); }
        }

        internal ConnectionParams Params(string service, string clientName = "e2e")
        {
            return new ConnectionParams
            {
                GatewayHost = "127.0.0.1",
                GatewayPort = Port,
                Service = service,
                ClientName = clientName,
                ReconnectDelayMs = 50,
                ReconnectMaxDelayMs = 500,
            };
        }

        /// <summary>Kills the process at once (SIGKILL), as a crash would.</summary>
        internal void Kill()
        {
            Stop(true);
        }

        public void Dispose()
        {
            Stop(false);
        }

        private void Stop(bool hard)
        {
            if (process.HasExited) return;
            if (!hard)
            {
                // SIGTERM: the gateway's orderly shutdown. Process.Kill would send SIGKILL.
                Mono.Unix.Native.Syscall.kill(process.Id, Mono.Unix.Native.Signum.SIGTERM);
                if (process.WaitForExit(10000))
                {
                    return;
                }
            }
            process.Kill();
            process.WaitForExit(10000);
        }
    }
}
