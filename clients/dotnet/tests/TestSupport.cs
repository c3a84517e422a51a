using System;
using System.IO;
using System.Text;
using NUnit.Framework;

namespace MessagingMesh.Tests
{
    /// <summary>Where the shared test data lives, and frame helpers over the internal codec.</summary>
    internal static class TestData
    {
        /// <summary>
        /// The shared <c>testdata</c> folder: <c>MM_TESTDATA</c> if set, else found by walking up
        /// from the test assembly to the repository root.
        /// </summary>
        internal static string Root
        {
            get
            {
                var fromEnvironment = Environment.GetEnvironmentVariable("MM_TESTDATA");
                if (!string.IsNullOrEmpty(fromEnvironment))
                {
                    Assert.IsTrue(Directory.Exists(Path.Combine(fromEnvironment, "vectors")),
                                  "MM_TESTDATA=" + fromEnvironment + " has no vectors folder");
                    return fromEnvironment;
                }
                var directory = new DirectoryInfo(BuildDirectory);
                while (directory != null)
                {
                    var candidate = Path.Combine(directory.FullName, "testdata");
                    if (Directory.Exists(Path.Combine(candidate, "vectors"))) return candidate;
                    directory = directory.Parent;
                }
                Assert.Fail("cannot find testdata/vectors above " + typeof(TestData).Assembly.Location
                            + "; set MM_TESTDATA");
                return null;
            }
        }

        /// <summary>Where the test assembly (and the example programs next to it) were built; the
        /// original location even when the runner shadow-copies the assembly.</summary>
        internal static string BuildDirectory
        {
            get { return Path.GetDirectoryName(new Uri(typeof(TestData).Assembly.CodeBase).LocalPath); }
        }

        internal static byte[] Vector(string name)
        {
            return File.ReadAllBytes(Path.Combine(Root, "vectors", name));
        }
    }

    /// <summary>A whole decoded frame.</summary>
    internal sealed class DecodedFrame
    {
        internal FrameHeader Header;
        internal Message Body;
    }

    internal static class Frames
    {
        internal static DecodedFrame Decode(byte[] frame)
        {
            Assert.That(frame.Length, Is.GreaterThanOrEqualTo(21));
            Assert.AreEqual(frame.Length, Wire.ReadInt32(frame, 0), "frame length prefix");
            var header = FrameHeader.Parse(frame, 0, frame.Length);
            return new DecodedFrame { Header = header, Body = header.DecodeBody(frame, 0, frame.Length) };
        }

        internal static byte[] Encode(uint subscriptionId, string subject, string replySubject,
                                      WireAction action, Message body)
        {
            var writer = new WireWriter(64);
            writer.WriteFrame(subscriptionId, subject, replySubject, action, body);
            return writer.ToArray();
        }

        internal static byte[] Reencode(DecodedFrame frame)
        {
            return Encode(frame.Header.SubscriptionId, frame.Header.Subject, frame.Header.ReplySubject,
                          frame.Header.Action, frame.Body);
        }

        internal static string Hex(byte[] bytes)
        {
            var builder = new StringBuilder();
            for (int i = 0; i < bytes.Length; i++)
            {
                if (i > 0 && i % 16 == 0) builder.Append('\n');
                builder.Append(bytes[i].ToString("x2")).Append(' ');
            }
            return builder.ToString();
        }

        /// <summary>Asserts byte equality, printing both sides in hex when they differ.</summary>
        internal static void AssertBytes(byte[] expected, byte[] actual, string what)
        {
            if (Utf8.BytesEqual(expected, actual)) return;
            int first = 0;
            while (first < expected.Length && first < actual.Length && expected[first] == actual[first]) first++;
            Assert.Fail(what + ": bytes differ at offset " + first + " (expected " + expected.Length
                        + " bytes, got " + actual.Length + ")\nexpected:\n" + Hex(expected)
                        + "\nactual:\n" + Hex(actual));
        }
    }
}

namespace MessagingMesh.Tests
{
    using System.Net;
    using System.Net.Sockets;

    /// <summary>Two connected loopback sockets.</summary>
    internal sealed class SocketPair : IDisposable
    {
        internal readonly Socket Left;
        internal readonly Socket Right;

        internal SocketPair()
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            Left = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            Left.NoDelay = true;
            Left.Connect((IPEndPoint)listener.LocalEndpoint);
            Right = listener.AcceptSocket();
            listener.Stop();
        }

        public void Dispose()
        {
            Left.Close();
            Right.Close();
        }
    }
}

namespace MessagingMesh.Tests
{
    using System.Collections.Generic;

    /// <summary>Captures the library's log lines, so tests stay quiet and can assert on them.</summary>
    internal static class TestLog
    {
        private static readonly List<string> Lines = new List<string>();

        internal static void Install()
        {
            lock (Lines) Lines.Clear();
            Logger.MinimumLevel = Logger.LogLevel.Debug;
            Logger.RegisterCallback((level, message) =>
            {
                lock (Lines)
                {
                    if (Lines.Count > 10000) Lines.RemoveAt(0);
                    Lines.Add(level + ": " + message);
                }
                if (Environment.GetEnvironmentVariable("MM_TEST_LOG") != null) Console.WriteLine(level + ": " + message);
            });
        }

        internal static int Count(string fragment)
        {
            lock (Lines) return Lines.FindAll(line => line.Contains(fragment)).Count;
        }
    }
}
