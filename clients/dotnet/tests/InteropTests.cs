using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading;
using NUnit.Framework;

namespace MessagingMesh.Tests
{
    /// <summary>
    /// Interoperability with the Rust side: the C# client and the Rust <c>mm</c> tool (built on the
    /// Rust client) on one real <c>mm-gateway</c>, in every direction — C# publishes and Rust
    /// listens, Rust publishes and C# subscribes, Rust requests and C# answers, C# requests and Rust
    /// answers. Every test checks field names, types and values end to end: what one side encoded
    /// is what the other decoded.
    /// </summary>
    /// <remarks>
    /// No test sleeps to synchronise. <c>mm listen</c> and <c>mm reply</c> print their "listening" /
    /// "answering" line on stderr only after the gateway confirmed their subscription (a flush), so
    /// that line means they are live; a C# subscription is live once <see cref="Connection.Flush()"/>
    /// returns; <c>mm send</c> exits only after the gateway confirmed its messages.
    /// </remarks>
    [TestFixture]
    public class InteropTests
    {
        private const int ExitTimeoutMs = 15000;
        private const int ExitRequestTimeout = 3;
        private const int ExitNoResponders = 4;

        private static int services;
        private GatewayProcess gateway;
        private readonly List<IDisposable> cleanup = new List<IDisposable>();
        private string service;

        [TestFixtureSetUp]
        public void StartGateway()
        {
            gateway = new GatewayProcess();
        }

        [TestFixtureTearDown]
        public void StopGateway()
        {
            gateway.Dispose();
        }

        [SetUp]
        public void NewService()
        {
            TestLog.Install();
            service = "INTEROP" + Interlocked.Increment(ref services);
        }

        [TearDown]
        public void CleanUp()
        {
            // Processes first (they may be waiting on a connection), then connections.
            for (int i = cleanup.Count - 1; i >= 0; i--) cleanup[i].Dispose();
            cleanup.Clear();
        }

        private Connection Connect()
        {
            var connection = new Connection(gateway.Params(service, "interop"));
            cleanup.Add(connection);
            return connection;
        }

        /// <summary>Starts <c>mm COMMAND ARGS... --gateway 127.0.0.1:PORT --service SERVICE</c>.</summary>
        private ChildProcess Mm(string command, params string[] arguments)
        {
            var all = new List<string> { command };
            all.AddRange(arguments);
            all.AddRange(new[] { "--gateway", "127.0.0.1:" + gateway.Port, "--service", service });
            var process = ChildProcess.Mm(all.ToArray());
            cleanup.Add(process);
            return process;
        }

        // ---------------------------------------------------------------------------------------
        // C# publishes, Rust listens.

        [Test]
        public void CSharpPublisherToRustListenerKeepsEveryFieldType()
        {
            var listen = Mm("listen", "--count", "1", "INTEROP.PRICES.>");
            listen.WaitForLine("mm: listening on INTEROP.PRICES.>", onStderr: true);

            var publisher = Connect();
            // Not matched by the listener's pattern: if it were delivered, it would be printed first.
            publisher.SendMessage("INTEROP.OTHER.IBM", new Message().AddString("wrong", "subject"));
            publisher.SendMessage("INTEROP.PRICES.IBM.NYSE", new Message()
                .AddString("text", "Zürich \"quoted\" \\ 😀 日本")
                .AddInt32("i32", -42)
                .AddUInt32("u32", 4000000000)
                .AddInt64("i64", -9000000000000000000)
                .AddUInt64("u64", ulong.MaxValue)
                .AddDouble("pi", Math.PI)
                .AddDouble("negzero", NegativeZero)
                .AddBool("yes", true)
                .AddBool("no", false)
                .AddBlob("blob", new byte[] { 0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff })
                .AddMessage("meta", new Message().AddUInt32("seq", 7).AddString("empty", "")),
                "INTEROP.REPLY.HERE");
            publisher.Flush();

            Assert.AreEqual(0, listen.WaitForExit(ExitTimeoutMs), listen.Output);
            var printed = Printed.Parse(listen);
            Assert.AreEqual(1, printed.Count, listen.Output);
            Assert.AreEqual("INTEROP.PRICES.IBM.NYSE", printed[0].Subject);
            Assert.AreEqual("INTEROP.REPLY.HERE", printed[0].Reply);
            CollectionAssert.AreEqual(new[]
            {
                "text:str=\"Zürich \\\"quoted\\\" \\\\ 😀 日本\"",
                "i32:i32=-42",
                "u32:u32=4000000000",
                "i64:i64=-9000000000000000000",
                "u64:u64=18446744073709551615",
                "pi:f64=3.141592653589793",
                "negzero:f64=-0.0",
                "yes:bool=true",
                "no:bool=false",
                "blob:blob=0x00017f80feff",
                "meta:msg={",
                "    seq:u32=7",
                "    empty:str=\"\"",
                "}",
            }, printed[0].Lines, listen.Output);
        }

        [Test]
        public void CSharpPublisherToRustJsonListenerInOrderWithWholeBlobs()
        {
            var listen = Mm("listen", "--json", "--count", "3", "INTEROP.SEQ.*");
            listen.WaitForLine("mm: listening on INTEROP.SEQ.*", onStderr: true);

            var publisher = Connect();
            var blob = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
            for (int i = 1; i <= 3; i++)
            {
                publisher.SendMessage("INTEROP.SEQ." + i, new Message()
                    .AddInt32("seq", i)
                    .AddString("note", "line 1\nline 2\ttab é")
                    .AddString("tag", "a")
                    .AddString("tag", "b")
                    .AddDouble("px", 0.1 * i)
                    .AddBlob("blob", blob));
            }
            publisher.Flush();

            Assert.AreEqual(0, listen.WaitForExit(ExitTimeoutMs), listen.Output);
            var lines = listen.Stdout;
            Assert.AreEqual(3, lines.Length, listen.Output);
            var hex = string.Concat(blob.Select(b => b.ToString("x2")).ToArray());
            string[] doubles = { "0.1", "0.2", "0.30000000000000004" };
            var time = new Regex("^\\{\"time\":\"\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z\",");
            for (int i = 1; i <= 3; i++)
            {
                var line = lines[i - 1];
                Assert.IsTrue(time.IsMatch(line), "no time stamp: " + line);
                Assert.AreEqual(
                    "\"subject\":\"INTEROP.SEQ." + i + "\",\"reply\":null,\"message\":{\"seq\":" + i
                    + ",\"note\":\"line 1\\nline 2\\ttab é\",\"tag\":[\"a\",\"b\"],\"px\":" + doubles[i - 1]
                    + ",\"blob\":\"" + hex + "\"}}",
                    time.Replace(line, ""), "message " + i);
            }
        }

        // ---------------------------------------------------------------------------------------
        // Rust publishes, C# subscribes.

        [Test]
        public void RustPublisherToCSharpSubscriberWithInferredAndExplicitTypes()
        {
            var subscriber = Connect();
            var inbox = new Inbox();
            subscriber.Subscribe("INTEROP.FROM.>", inbox.Callback);
            subscriber.Flush();

            var send = Mm("send", "INTEROP.FROM.RUST", "text=Grüße aus Köln 🚀", "n=42", "big=5000000000",
                          "huge=18446744073709551615", "px=2.5", "ok=true", "qty:u32=7", "neg:i64=-1",
                          "label:str=42", "data:blob=deadbeef00", "--reply", "INTEROP.ANSWER");
            Assert.AreEqual(0, send.WaitForExit(ExitTimeoutMs), send.Output);
            var json = Mm("send", "INTEROP.FROM.JSON", "--count", "2",
                          "--json", "{\"sym\":\"IBM\",\"legs\":{\"qty\":100,\"px\":1.5,\"venue\":\"Börse\"},\"rep\":[1,2,3]}");
            Assert.AreEqual(0, json.WaitForExit(ExitTimeoutMs), json.Output);

            // mm send exits once the gateway has processed its messages; they are on their way.
            inbox.WaitFor(3);
            var first = inbox.Received[0];
            Assert.AreEqual("INTEROP.FROM.RUST", first.Subject);
            Assert.AreEqual("INTEROP.ANSWER", first.Reply);
            AssertShape(first.Message,
                        "text", FieldType.String, "n", FieldType.Int32, "big", FieldType.Int64,
                        "huge", FieldType.UInt64, "px", FieldType.Double, "ok", FieldType.Bool,
                        "qty", FieldType.UInt32, "neg", FieldType.Int64, "label", FieldType.String,
                        "data", FieldType.Blob);
            Assert.AreEqual("Grüße aus Köln 🚀", first.Message.GetString("text"));
            Assert.IsTrue(first.Message.GetField("text").IsUtf8);
            Assert.AreEqual(42, first.Message.GetInt32("n"));
            Assert.AreEqual(5000000000L, first.Message.GetInt64("big"));
            Assert.AreEqual(ulong.MaxValue, first.Message.GetUInt64("huge"));
            Assert.AreEqual(2.5, first.Message.GetDouble("px"));
            Assert.IsTrue(first.Message.GetBool("ok"));
            Assert.AreEqual(7u, first.Message.GetUInt32("qty"));
            Assert.AreEqual(-1L, first.Message.GetInt64("neg"));
            Assert.AreEqual("42", first.Message.GetString("label"));
            CollectionAssert.AreEqual(new byte[] { 0xde, 0xad, 0xbe, 0xef, 0x00 }, first.Message.GetBlob("data"));

            for (int i = 1; i <= 2; i++)
            {
                var received = inbox.Received[i];
                Assert.AreEqual("INTEROP.FROM.JSON", received.Subject);
                Assert.AreEqual("", received.Reply, "no reply subject");
                var message = received.Message;
                AssertShape(message, "sym", FieldType.String, "legs", FieldType.Message, "rep", FieldType.Int32,
                            "rep", FieldType.Int32, "rep", FieldType.Int32);
                Assert.AreEqual("IBM", message.GetString("sym"));
                var legs = message.GetMessage("legs");
                AssertShape(legs, "qty", FieldType.Int32, "px", FieldType.Double, "venue", FieldType.String);
                Assert.AreEqual(100, legs.GetInt32("qty"));
                Assert.AreEqual(1.5, legs.GetDouble("px"));
                Assert.AreEqual("Börse", legs.GetString("venue"));
                CollectionAssert.AreEqual(new[] { 1, 2, 3 }, message.GetFields("rep").Select(f => f.GetInt32()).ToArray());
            }
        }

        // ---------------------------------------------------------------------------------------
        // Rust requests, C# answers.

        [Test]
        public void RustRequestAnsweredByCSharpResponder()
        {
            var responder = Connect();
            var requests = new Inbox();
            responder.Subscribe("INTEROP.Service.Quote", (c, subject, replySubject, incoming, tag) =>
            {
                requests.Callback(c, subject, replySubject, incoming, tag);
                // Tolerant reads: a wrong type shows up in the assertions below, not as a lost reply.
                int qty;
                double px;
                string sym;
                byte[] raw;
                incoming.TryGetInt32("qty", out qty);
                incoming.TryGetDouble("px", out px);
                incoming.TryGetString("sym", out sym);
                incoming.TryGetBlob("raw", out raw);
                c.SendReply(replySubject, new Message()
                    .AddDouble("total", qty * px)
                    .AddString("sym", sym + " ✓")
                    .AddInt32("qty", -qty)
                    .AddUInt32("flags", uint.MaxValue)
                    .AddInt64("ts", -1234567890123)
                    .AddUInt64("id", 18000000000000000000)
                    .AddBool("filled", true)
                    .AddBlob("digest", (raw ?? new byte[0]).Reverse().ToArray())
                    .AddMessage("venue", new Message().AddString("name", "Börse Frankfurt").AddDouble("fee", 0.0025)));
            });
            responder.Flush();

            var request = Mm("request", "INTEROP.Service.Quote", "sym=Société Générale", "qty:i32=3", "px:f64=1.25",
                             "raw:blob=0102030405", "--timeout", "10");
            Assert.AreEqual(0, request.WaitForExit(ExitTimeoutMs), request.Output);

            // What C# received.
            Assert.AreEqual(1, requests.Received.Count);
            var received = requests.Received[0];
            Assert.AreEqual("INTEROP.Service.Quote", received.Subject);
            StringAssert.StartsWith("_INBOX.", received.Reply);
            AssertShape(received.Message, "sym", FieldType.String, "qty", FieldType.Int32, "px", FieldType.Double,
                        "raw", FieldType.Blob);
            Assert.AreEqual("Société Générale", received.Message.GetString("sym"));
            Assert.AreEqual(3, received.Message.GetInt32("qty"));
            Assert.AreEqual(1.25, received.Message.GetDouble("px"));
            CollectionAssert.AreEqual(new byte[] { 1, 2, 3, 4, 5 }, received.Message.GetBlob("raw"));

            // What Rust received back.
            var printed = Printed.Parse(request);
            Assert.AreEqual(1, printed.Count, request.Output);
            Assert.AreEqual(received.Reply, printed[0].Subject, "the reply arrives on the request's inbox");
            Assert.IsNull(printed[0].Reply);
            CollectionAssert.AreEqual(new[]
            {
                "total:f64=3.75",
                "sym:str=\"Société Générale ✓\"",
                "qty:i32=-3",
                "flags:u32=4294967295",
                "ts:i64=-1234567890123",
                "id:u64=18000000000000000000",
                "filled:bool=true",
                "digest:blob=0x0504030201",
                "venue:msg={",
                "    name:str=\"Börse Frankfurt\"",
                "    fee:f64=0.0025",
                "}",
            }, printed[0].Lines, request.Output);
        }

        [Test]
        public void RustRequestReportsTimeoutAndNoRespondersFromTheCSharpSide()
        {
            var silent = Connect();
            var requests = new Inbox();
            var subscription = silent.Subscribe("INTEROP.Service.Mute", requests.Callback);
            silent.Flush();

            var timesOut = Mm("request", "INTEROP.Service.Mute", "n=1", "--timeout", "0.2");
            Assert.AreEqual(ExitRequestTimeout, timesOut.WaitForExit(ExitTimeoutMs), timesOut.Output);
            StringAssert.Contains("timeout", string.Join("\n", timesOut.Stderr));
            requests.WaitFor(1);
            Assert.AreEqual(1, requests.Received[0].Message.GetInt32("n"));

            // Once the C# side unsubscribed (and the gateway confirmed it), nobody answers.
            subscription.Dispose();
            silent.Flush();
            var nobody = Mm("request", "INTEROP.Service.Mute", "n=2", "--timeout", "10");
            Assert.AreEqual(ExitNoResponders, nobody.WaitForExit(ExitTimeoutMs), nobody.Output);
            StringAssert.Contains("no responders", string.Join("\n", nobody.Stderr));
        }

        // ---------------------------------------------------------------------------------------
        // C# requests, Rust answers.

        [Test]
        public void CSharpRequestAnsweredByRustEchoResponderComesBackByteExact()
        {
            var reply = Mm("reply", "INTEROP.Echo", "--count", "1");
            reply.WaitForLine("mm: answering requests on INTEROP.Echo", onStderr: true);

            var requester = Connect();
            var nanWithPayload = BitConverter.Int64BitsToDouble(0x7ff8000000000123);
            var request = new Message()
                .AddString("text", "naïve café 😀 \"q\"")
                .AddStringBytes("raw", new byte[] { 0x61, 0xff, 0x62 }) // not UTF-8
                .AddString("", "empty name")
                .AddInt32("n", int.MinValue)
                .AddInt32("n", int.MaxValue)
                .AddUInt32("u32", uint.MaxValue)
                .AddInt64("i64", long.MinValue)
                .AddUInt64("u64", ulong.MaxValue)
                .AddDouble("e", Math.E)
                .AddDouble("nan", nanWithPayload)
                .AddDouble("inf", double.NegativeInfinity)
                .AddDouble("negzero", NegativeZero)
                .AddBool("t", true)
                .AddBlob("none", new byte[0])
                .AddBlob("bytes", Enumerable.Range(0, 256).Select(i => (byte)i).ToArray())
                .AddMessage("nested", new Message().AddMessage("deeper", new Message().AddString("leaf", "ü")));
            var echo = requester.SendRequest("INTEROP.Echo", request, 10000);

            Assert.IsTrue(echo.ValueEquals(request), "echo differs:\n  sent " + request + "\n  got  " + echo);
            Assert.IsFalse(echo.GetField("raw").IsUtf8);
            Assert.AreEqual("a\uFFFDb", echo.GetString("raw"));
            CollectionAssert.AreEqual(new byte[] { 0x61, 0xff, 0x62 }, echo.GetStringBytes("raw"));
            Assert.AreEqual(0x7ff8000000000123, BitConverter.DoubleToInt64Bits(echo.GetDouble("nan")));
            Assert.AreEqual(long.MinValue, BitConverter.DoubleToInt64Bits(echo.GetDouble("negzero")));
            Assert.AreEqual("naïve café 😀 \"q\"", echo.GetString("text"));
            Assert.AreEqual("ü", echo.GetMessage("nested").GetMessage("deeper").GetString("leaf"));

            // How the Rust side saw the request.
            Assert.AreEqual(0, reply.WaitForExit(ExitTimeoutMs), reply.Output);
            var printed = Printed.Parse(reply);
            Assert.AreEqual(1, printed.Count, reply.Output);
            Assert.AreEqual("INTEROP.Echo", printed[0].Subject);
            StringAssert.StartsWith("_INBOX.", printed[0].Reply);
            CollectionAssert.AreEqual(new[]
            {
                "text:str=\"naïve café 😀 \\\"q\\\"\"",
                "raw:str=\"a\\xffb\"",
                ":str=\"empty name\"",
                "n:i32=-2147483648",
                "n:i32=2147483647",
                "u32:u32=4294967295",
                "i64:i64=-9223372036854775808",
                "u64:u64=18446744073709551615",
                "e:f64=2.718281828459045",
                "nan:f64=NaN",
                "inf:f64=-inf",
                "negzero:f64=-0.0",
                "t:bool=true",
                "none:blob=0x",
                "bytes:blob=0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f…(256 bytes)",
                "nested:msg={",
                "    deeper:msg={",
                "        leaf:str=\"ü\"",
                "    }",
                "}",
            }, printed[0].Lines, reply.Output);

            // mm reply unsubscribed (and had the gateway confirm it) before exiting.
            Assert.Throws<NoRespondersException>(() => requester.SendRequest("INTEROP.Echo", new Message(), 10000));
        }

        [Test]
        public void CSharpRequestsAnsweredByRustFixedReplyOnAWildcard()
        {
            var reply = Mm("reply", "INTEROP.Status.*", "status=up ✓", "load:f64=0.25", "n:u32=7", "big:i64=-5000000000",
                           "id:u64=12345678901234567890", "small:i32=-7", "data:blob=cafe", "ok:bool=false", "--count", "2");
            reply.WaitForLine("mm: answering requests on INTEROP.Status.*", onStderr: true);

            var requester = Connect();
            foreach (var subject in new[] { "INTEROP.Status.A", "INTEROP.Status.B" })
            {
                var answer = requester.SendRequest(subject, new Message().AddString("who", subject), 10000);
                AssertShape(answer, "status", FieldType.String, "load", FieldType.Double, "n", FieldType.UInt32,
                            "big", FieldType.Int64, "id", FieldType.UInt64, "small", FieldType.Int32,
                            "data", FieldType.Blob, "ok", FieldType.Bool);
                Assert.AreEqual("up ✓", answer.GetString("status"));
                Assert.AreEqual(0.25, answer.GetDouble("load"));
                Assert.AreEqual(7u, answer.GetUInt32("n"));
                Assert.AreEqual(-5000000000L, answer.GetInt64("big"));
                Assert.AreEqual(12345678901234567890UL, answer.GetUInt64("id"));
                Assert.AreEqual(-7, answer.GetInt32("small"));
                CollectionAssert.AreEqual(new byte[] { 0xca, 0xfe }, answer.GetBlob("data"));
                Assert.IsFalse(answer.GetBool("ok"));
            }

            Assert.AreEqual(0, reply.WaitForExit(ExitTimeoutMs), reply.Output);
            var printed = Printed.Parse(reply);
            CollectionAssert.AreEqual(new[] { "INTEROP.Status.A", "INTEROP.Status.B" },
                                      printed.Select(p => p.Subject).ToArray(), reply.Output);
            CollectionAssert.AreEqual(new[] { "who:str=\"INTEROP.Status.A\"" }, printed[0].Lines);
            CollectionAssert.AreEqual(new[] { "who:str=\"INTEROP.Status.B\"" }, printed[1].Lines);
        }

        // ---------------------------------------------------------------------------------------
        // Helpers.

        private static readonly double NegativeZero = BitConverter.Int64BitsToDouble(long.MinValue);

        /// <summary>Asserts a message's field names and types, in order: name, type, name, type, ...</summary>
        private static void AssertShape(Message message, params object[] namesAndTypes)
        {
            var expected = new StringBuilder();
            for (int i = 0; i < namesAndTypes.Length; i += 2)
            {
                expected.Append(namesAndTypes[i]).Append(':').Append(FieldTypes.Name((FieldType)namesAndTypes[i + 1])).Append(' ');
            }
            var actual = new StringBuilder();
            foreach (var field in message)
            {
                actual.Append(field.Name).Append(':').Append(FieldTypes.Name(field.Type)).Append(' ');
            }
            Assert.AreEqual(expected.ToString(), actual.ToString(), "fields of " + message);
        }

        /// <summary>One received message, as a subscription callback saw it.</summary>
        private sealed class ReceivedMessage
        {
            internal string Subject;
            internal string Reply;
            internal Message Message;
        }

        /// <summary>Records what a subscription receives; <see cref="WaitFor"/> blocks until a count.</summary>
        private sealed class Inbox
        {
            private readonly List<ReceivedMessage> received = new List<ReceivedMessage>();

            internal void Callback(Connection connection, string subject, string reply, Message message, object tag)
            {
                lock (received)
                {
                    received.Add(new ReceivedMessage { Subject = subject, Reply = reply, Message = message });
                    Monitor.PulseAll(received);
                }
            }

            internal List<ReceivedMessage> Received
            {
                get { lock (received) return new List<ReceivedMessage>(received); }
            }

            internal void WaitFor(int count, int timeoutMs = 10000)
            {
                long deadline = Clock.NowMs + timeoutMs;
                lock (received)
                {
                    while (received.Count < count)
                    {
                        int left = Clock.Remaining(deadline);
                        if (left == 0) Assert.Fail("received " + received.Count + " of " + count + " messages");
                        Monitor.Wait(received, left);
                    }
                }
            }
        }

        /// <summary>
        /// One message as <c>mm listen</c>, <c>mm reply</c> and <c>mm request</c> print it:
        /// <c>TIME subject=S [reply=R] message={</c>, one typed field per line indented by four
        /// spaces (nested messages by four more), and <c>}</c>; an empty message is <c>message={}</c>.
        /// </summary>
        private sealed class Printed
        {
            private static readonly Regex Header = new Regex(
                "^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z subject=(\\S+)(?: reply=(\\S+))? message=(\\{\\}|\\{)$");

            internal string Subject;
            internal string Reply;
            /// <summary>The field lines, without the first level of indentation.</summary>
            internal readonly List<string> Lines = new List<string>();

            internal static List<Printed> Parse(ChildProcess process)
            {
                var messages = new List<Printed>();
                Printed open = null;
                foreach (var line in process.Stdout)
                {
                    if (open == null)
                    {
                        var match = Header.Match(line);
                        Assert.IsTrue(match.Success, "not a message header: " + line + "\n" + process.Output);
                        var message = new Printed
                        {
                            Subject = match.Groups[1].Value,
                            Reply = match.Groups[2].Success ? match.Groups[2].Value : null,
                        };
                        messages.Add(message);
                        if (match.Groups[3].Value == "{") open = message;
                    }
                    else if (line == "}")
                    {
                        open = null;
                    }
                    else
                    {
                        StringAssert.StartsWith("    ", line, process.Output);
                        open.Lines.Add(line.Substring(4));
                    }
                }
                Assert.IsNull(open, "a message is not closed\n" + process.Output);
                return messages;
            }
        }
    }
}
