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
    /// A program run by a test (an example, the <c>mm</c> tool): its output is collected line by
    /// line, and tests wait for a line or for the exit, with deadlines.
    /// </summary>
    internal sealed class ChildProcess : IDisposable
    {
        private readonly Process process;
        private readonly List<string> stdout = new List<string>();
        private readonly List<string> stderr = new List<string>();
        private readonly Thread[] drains;
        private readonly string description;

        internal ChildProcess(string fileName, params string[] arguments)
        {
            description = fileName + " " + string.Join(" ", arguments);
            var start = new ProcessStartInfo(fileName, Quote(arguments))
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = true,
                // The programs write UTF-8 (the mm tool prints non-ASCII text as it is).
                StandardOutputEncoding = new UTF8Encoding(false),
                StandardErrorEncoding = new UTF8Encoding(false),
            };
            process = Process.Start(start);
            drains = new[] { Drain(process.StandardOutput, stdout), Drain(process.StandardError, stderr) };
        }

        /// <summary>Runs one of the programs built next to the tests with mono.</summary>
        internal static ChildProcess Example(string name, params string[] arguments)
        {
            var all = new List<string> { Path.Combine(TestData.BuildDirectory, name + ".exe") };
            all.AddRange(arguments);
            return new ChildProcess("mono", all.ToArray());
        }

        /// <summary>
        /// The Rust <c>mm</c> command-line tool: <c>MM_BIN</c> (set by test.sh), else
        /// <c>target/debug/mm</c> in the repository.
        /// </summary>
        internal static string MmBinaryPath
        {
            get
            {
                var path = Environment.GetEnvironmentVariable("MM_BIN");
                if (string.IsNullOrEmpty(path))
                {
                    path = Path.Combine(Path.GetDirectoryName(TestData.Root), "target", "debug", "mm");
                }
                if (!File.Exists(path))
                {
                    Assert.Fail("mm not found at " + path + ": build it with `cargo build --bin mm` or set MM_BIN");
                }
                return path;
            }
        }

        /// <summary>Runs the Rust <c>mm</c> tool with these arguments.</summary>
        internal static ChildProcess Mm(params string[] arguments)
        {
            return new ChildProcess(MmBinaryPath, arguments);
        }

        private static string Quote(string[] arguments)
        {
            var quoted = new List<string>();
            foreach (var argument in arguments)
            {
                quoted.Add("\"" + argument.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"");
            }
            return string.Join(" ", quoted.ToArray());
        }

        private Thread Drain(StreamReader reader, List<string> into)
        {
            var thread = new Thread(() =>
            {
                string line;
                while ((line = reader.ReadLine()) != null)
                {
                    lock (into)
                    {
                        into.Add(line);
                        Monitor.PulseAll(into);
                    }
                }
                lock (into)
                {
                    into.Add(null); // end of stream
                    Monitor.PulseAll(into);
                }
            }) { IsBackground = true };
            thread.Start();
            return thread;
        }

        internal string[] Stdout { get { lock (stdout) return stdout.FindAll(l => l != null).ToArray(); } }

        internal string[] Stderr { get { lock (stderr) return stderr.FindAll(l => l != null).ToArray(); } }

        /// <summary>Waits for a stdout (or, with <paramref name="onStderr"/>, stderr) line containing
        /// <paramref name="fragment"/>.</summary>
        internal string WaitForLine(string fragment, bool onStderr = false, int timeoutMs = 30000)
        {
            var lines = onStderr ? stderr : stdout;
            long deadline = Clock.NowMs + timeoutMs;
            lock (lines)
            {
                while (true)
                {
                    foreach (var line in lines)
                    {
                        if (line != null && line.Contains(fragment)) return line;
                    }
                    int left = Clock.Remaining(deadline);
                    if (left == 0 || (lines.Count > 0 && lines[lines.Count - 1] == null))
                    {
                        Assert.Fail("\"" + fragment + "\" never appeared in the output of " + description + "\n" + Output);
                    }
                    Monitor.Wait(lines, left);
                }
            }
        }

        internal void WriteLine(string line)
        {
            process.StandardInput.WriteLine(line);
            process.StandardInput.Flush();
        }

        internal void CloseInput()
        {
            process.StandardInput.Close();
        }

        /// <summary>Waits for the process to exit and for its output to be read; returns its exit code.</summary>
        internal int WaitForExit(int timeoutMs = 30000)
        {
            if (!process.WaitForExit(timeoutMs))
            {
                Assert.Fail(description + " did not exit within " + timeoutMs + " ms\n" + Output);
            }
            foreach (var drain in drains) drain.Join(5000);
            return process.ExitCode;
        }

        internal string Output
        {
            get
            {
                return "stdout:\n  " + string.Join("\n  ", Stdout) + "\nstderr:\n  " + string.Join("\n  ", Stderr);
            }
        }

        public void Dispose()
        {
            try
            {
                if (!process.HasExited)
                {
                    process.Kill();
                    process.WaitForExit(5000);
                }
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }
        }
    }
}
