using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Net.Sockets;
using System.Threading;
using NUnit.Framework;

namespace MessagingMesh.Tests
{
    /// <summary>
    /// The client against a real <c>mm-gateway</c>, one gateway process for the fixture. Every test
    /// joins its own service, so tests cannot see each other's messages.
    /// </summary>
    [TestFixture]
    public class EndToEndTests
    {
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
            service = "E2E" + Interlocked.Increment(ref services);
        }

        [TearDown]
        public void CloseConnections()
        {
            foreach (var item in cleanup) item.Dispose();
            cleanup.Clear();
        }

        private Connection Connect(Action<ConnectionParams> configure = null)
        {
            var parameters = gateway.Params(service);
            if (configure != null) configure(parameters);
            var connection = new Connection(parameters);
            cleanup.Add(connection);
            return connection;
        }

        /// <summary>Records what one subscription receives; <see cref="WaitFor"/> blocks until a count.</summary>
        private sealed class Inbox
        {
            internal readonly List<KeyValuePair<string, Message>> Received = new List<KeyValuePair<string, Message>>();

            internal void Callback(Connection connection, string subject, string reply, Message message, object tag)
            {
                lock (Received)
                {
                    Received.Add(new KeyValuePair<string, Message>(subject, message));
                    Monitor.PulseAll(Received);
                }
            }

            internal void WaitFor(int count, int timeoutMs = 10000)
            {
                long deadline = Clock.NowMs + timeoutMs;
                lock (Received)
                {
                    while (Received.Count < count)
                    {
                        int left = Clock.Remaining(deadline);
                        if (left == 0) Assert.Fail("received " + Received.Count + " of " + count + " messages");
                        Monitor.Wait(Received, left);
                    }
                }
            }

            internal string[] Subjects
            {
                get { lock (Received) return Received.Select(r => r.Key).ToArray(); }
            }
        }

        [Test]
        public void HandshakeNegotiatesMm2()
        {
            var connection = Connect();
            Assert.AreEqual(2, connection.ProtocolVersion);
            Assert.That(connection.GatewayMaxFrame, Is.GreaterThan(1000000));
            Assert.That(connection.GatewayHeartbeatMs, Is.GreaterThan(0));
        }

        [Test]
        public void PublishedMessagesReachAnotherConnectionWithEveryFieldType()
        {
            var subscriber = Connect();
            var publisher = Connect();
            var inbox = new Inbox();
            subscriber.Subscribe("TEST.ALL", inbox.Callback);
            subscriber.Flush();
            publisher.SendMessage("TEST.ALL", VectorTests.ReferenceFields());
            inbox.WaitFor(1);
            VectorTests.AssertReferenceFields(inbox.Received[0].Value);
        }

        [Test]
        public void WildcardsMatchAsTheGrammarSays()
        {
            var subscriber = Connect();
            var publisher = Connect();
            var star = new Inbox();
            var rest = new Inbox();
            var everything = new Inbox();
            var leadingStar = new Inbox();
            var done = new Inbox();
            subscriber.Subscribe("A.*", star.Callback);
            subscriber.Subscribe("A.>", rest.Callback);
            subscriber.Subscribe(">", everything.Callback);
            subscriber.Subscribe("*.B", leadingStar.Callback);
            subscriber.Subscribe("DONE", done.Callback);
            subscriber.Flush();
            foreach (var subject in new[] { "A", "A.B", "A.B.C", "X.B", "a.B", "A.b" })
            {
                publisher.SendMessage(subject, new Message());
            }
            publisher.SendMessage("DONE", new Message());
            // Per publisher, order is preserved: once DONE is dispatched, everything before it was.
            done.WaitFor(1);
            CollectionAssert.AreEqual(new[] { "A.B", "A.b" }, star.Subjects);
            CollectionAssert.AreEqual(new[] { "A.B", "A.B.C", "A.b" }, rest.Subjects);
            CollectionAssert.AreEqual(new[] { "A", "A.B", "A.B.C", "X.B", "a.B", "A.b", "DONE" }, everything.Subjects);
            CollectionAssert.AreEqual(new[] { "A.B", "X.B", "a.B" }, leadingStar.Subjects);
        }

        [Test]
        public void APublisherReceivesItsOwnMessages()
        {
            var connection = Connect();
            var inbox = new Inbox();
            connection.Subscribe("SELF", inbox.Callback);
            connection.Flush();
            connection.SendMessage("SELF", new Message().AddInt32("n", 1));
            inbox.WaitFor(1);
        }

        [Test]
        public void OrderIsPreservedAndNothingIsLostForAStream()
        {
            var subscriber = Connect();
            var publisher = Connect();
            const int count = 100000;
            int next = 0;
            var errors = new List<string>();
            var all = new ManualResetEvent(false);
            subscriber.Subscribe("STREAM", (c, s, r, message, tag) =>
            {
                int value = message.GetInt32("#");
                if (value != next) lock (errors) errors.Add("got " + value + " expected " + next);
                next = value + 1;
                if (next == count) all.Set();
            });
            subscriber.Flush();
            for (int i = 0; i < count; i++) publisher.SendMessage("STREAM", new Message().AddInt32("#", i));
            Await.Signal(all, "all " + count + " messages", 60000);
            CollectionAssert.IsEmpty(errors.Take(5).ToArray());
            Assert.AreEqual(0, subscriber.Statistics.MessagesDropped);
        }

        [Test]
        public void RequestReplyAcrossConnections()
        {
            var responder = Connect();
            var requester = Connect();
            responder.Subscribe("Service.Add", (c, s, reply, request, tag) =>
                c.SendReply(reply, new Message().AddDouble("sum", request.GetDouble("A") + request.GetDouble("B"))));
            responder.Flush();
            var answer = requester.SendRequest("Service.Add", new Message().AddDouble("A", 0.5).AddDouble("B", 1.5), 5000);
            Assert.AreEqual(2.0, answer.GetDouble("sum"));

            var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
            {
                for (int i = 0; i < 100; i++)
                {
                    var reply = requester.SendRequest("Service.Add", new Message().AddDouble("A", t).AddDouble("B", i), 10000);
                    Assert.AreEqual(t + i, reply.GetDouble("sum"));
                }
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
        }

        [Test]
        public void RequestWithoutAReplyTimesOut()
        {
            var responder = Connect();
            var requester = Connect();
            responder.Subscribe("Service.Mute", (c, s, reply, request, tag) => { });
            responder.Flush();
            var watch = Stopwatch.StartNew();
            Assert.Throws<MeshTimeoutException>(() => requester.SendRequest("Service.Mute", new Message(), 300));
            Assert.That(watch.ElapsedMilliseconds, Is.InRange(250, 5000));
        }

        [Test]
        public void RequestToNobodyFailsWithNoRespondersAtOnce()
        {
            var requester = Connect();
            var watch = Stopwatch.StartNew();
            var error = Assert.Throws<NoRespondersException>(() => requester.SendRequest("Nobody.Home", new Message(), 10000));
            Assert.Less(watch.ElapsedMilliseconds, 5000);
            Assert.AreEqual("Nobody.Home", error.Subject);
        }

        [Test]
        public void RequestFromInsideACallback()
        {
            var adder = Connect();
            adder.Subscribe("Service.Add", (c, s, reply, request, tag) =>
                c.SendReply(reply, new Message().AddDouble("sum", request.GetDouble("A") + request.GetDouble("B"))));
            adder.Flush();
            var middle = Connect();
            middle.Subscribe("Service.Twice", (c, s, reply, request, tag) =>
            {
                var sum = c.SendRequest("Service.Add", new Message().AddDouble("A", 1).AddDouble("B", 2), 5000);
                c.SendReply(reply, new Message().AddDouble("twice", 2 * sum.GetDouble("sum")));
            });
            middle.Flush();
            var client = Connect();
            Assert.AreEqual(6.0, client.SendRequest("Service.Twice", new Message(), 10000).GetDouble("twice"));
        }

        [Test]
        public void QueueModeAgainstTheGateway()
        {
            var subscriber = Connect(p => p.DispatchMode = DispatchMode.Queue);
            var publisher = Connect();
            var inbox = new Inbox();
            subscriber.Subscribe("Q.*", inbox.Callback);
            subscriber.Flush();
            for (int i = 0; i < 10; i++) publisher.SendMessage("Q.x", new Message().AddInt32("i", i));
            publisher.Flush();
            int processed = 0;
            long deadline = Clock.NowMs + 10000;
            while (processed < 10 && Clock.NowMs < deadline)
            {
                processed += subscriber.ProcessMessageQueue(1000, 3).Processed;
            }
            Assert.AreEqual(10, processed);
            CollectionAssert.AreEqual(Enumerable.Range(0, 10).ToArray(), inbox.Received.Select(r => r.Value.GetInt32("i")).ToArray());
        }

        [Test]
        public void FlushAndMeshFlushAreAnswered()
        {
            var connection = Connect();
            connection.Flush(5000);
            connection.Flush(5000, meshWide: true);
        }

        [Test]
        public void AnMm1ClientWorksAgainstTheGateway()
        {
            var old = Connect(p => p.ProtocolVersion = 1);
            var modern = Connect();
            Assert.AreEqual(1, old.ProtocolVersion);
            var inbox = new Inbox();
            old.Subscribe("LEGACY.>", inbox.Callback);
            old.Flush(5000); // through its own inbox: MM/1 has no PING
            modern.SendMessage("LEGACY.x", new Message().AddString("s", "hi"));
            inbox.WaitFor(1);
            modern.Subscribe("Service.Echo", (c, s, reply, request, tag) => c.SendReply(reply, request));
            modern.Flush();
            Assert.AreEqual("again", old.SendRequest("Service.Echo", new Message().AddString("s", "again"), 5000).GetString("s"));
            // No NO_RESPONDERS on MM/1: a request to nobody times out.
            Assert.Throws<MeshTimeoutException>(() => old.SendRequest("Nobody.Home", new Message(), 300));
        }

        [Test]
        public void LargeMessagesRoundTrip()
        {
            var subscriber = Connect();
            var publisher = Connect();
            var inbox = new Inbox();
            subscriber.Subscribe("BIG", inbox.Callback);
            subscriber.Flush();
            var blob = new byte[2 * 1024 * 1024];
            new Random(7).NextBytes(blob);
            publisher.SendMessage("BIG", new Message().AddBlob("b", blob));
            inbox.WaitFor(1);
            CollectionAssert.AreEqual(blob, inbox.Received[0].Value.GetBlob("b"));
        }

        [Test]
        public void TheGatewayForwardsBodiesItCannotDecodeAndTheClientDropsOnlyThose()
        {
            var subscriber = Connect();
            var inbox = new Inbox();
            var errors = new List<ConnectionErrorEventArgs>();
            var reported = new ManualResetEvent(false);
            subscriber.Error += (sender, e) => { lock (errors) errors.Add(e); reported.Set(); };
            subscriber.Subscribe("NEST.*", inbox.Callback);
            subscriber.Flush();
            // A raw MM/1 publisher: the library itself never encodes a 65-level message.
            using (var raw = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
            {
                raw.Connect("127.0.0.1", gateway.Port);
                raw.Send(Frames.Encode(0, service, "raw", WireAction.Connect, null));
                var reader = new FrameReader(raw, 1 << 20);
                int offset;
                int length;
                while (!reader.TryNext(out offset, out length)) Assert.IsTrue(reader.Fill(), "ACK");
                raw.Send(TestData.Vector("nest-65.bin"));
                raw.Send(TestData.Vector("nest-64.bin"));
                inbox.WaitFor(1);
            }
            Await.Signal(reported, "the decode error report");
            Assert.AreEqual(1, inbox.Received.Count);
            Assert.IsInstanceOf<DecodeException>(errors[0].Exception);
            Assert.AreEqual("NEST.x", errors[0].Subject);
            Assert.IsTrue(subscriber.IsConnected);
        }

        [Test]
        public void GatewayStatisticsCanBeRequested()
        {
            var connection = Connect();
            var stats = connection.SendRequest("_MM.STATS", new Message(), 5000);
            Assert.That(stats.Count, Is.GreaterThan(0), stats.ToString());
        }

        [Test]
        public void PublishingToAReservedSubjectIsRefusedByTheLibrary()
        {
            var connection = Connect();
            Assert.Throws<InvalidSubjectException>(() => connection.SendMessage("_MM.STATS", new Message()));
        }
    }

    /// <summary>
    /// Losing the gateway: each test owns its gateway process, kills it, and starts a new one on
    /// the same port.
    /// </summary>
    [TestFixture]
    public class ReconnectEndToEndTests
    {
        [SetUp]
        public void QuietLog()
        {
            TestLog.Install();
        }

        [Test]
        public void ClientsReconnectToANewGatewayOnTheSamePortAndResubscribe()
        {
            var first = new GatewayProcess();
            int port = first.Port;
            GatewayProcess second = null;
            try
            {
                var subscriber = new Connection(first.Params("RECONNECT"));
                var publisher = new Connection(first.Params("RECONNECT"));
                using (subscriber)
                using (publisher)
                {
                    var disconnected = new CountdownEvent(2);
                    var reconnected = new CountdownEvent(2);
                    foreach (var connection in new[] { subscriber, publisher })
                    {
                        connection.Disconnected += (sender, e) => disconnected.Signal();
                        connection.Reconnected += (sender, e) => reconnected.Signal();
                    }
                    var received = new List<int>();
                    var arrived = new Semaphore(0, 1000);
                    subscriber.Subscribe("R.*", (c, s, r, message, tag) =>
                    {
                        lock (received) received.Add(message.GetInt32("n"));
                        arrived.Release();
                    });
                    subscriber.Flush();
                    publisher.SendMessage("R.x", new Message().AddInt32("n", 1));
                    Await.Signal(arrived, "the message before the crash");

                    first.Kill();
                    Await.Signal(disconnected.WaitHandle, "both Disconnected events");
                    second = new GatewayProcess(port);
                    Await.Signal(reconnected.WaitHandle, "both Reconnected events", 30000);
                    Assert.IsTrue(subscriber.IsConnected);

                    // The resubscribe was queued before anything else: a flush confirms it.
                    subscriber.Flush(5000);
                    publisher.SendMessage("R.y", new Message().AddInt32("n", 2));
                    Await.Signal(arrived, "the message after reconnecting");
                    lock (received) CollectionAssert.AreEqual(new[] { 1, 2 }, received);

                    // Requests work again too (the inbox was resubscribed).
                    subscriber.Subscribe("R.Echo", (c, s, reply, request, tag) => c.SendReply(reply, request));
                    subscriber.Flush();
                    Assert.AreEqual(5, publisher.SendRequest("R.Echo", new Message().AddInt32("n", 5), 5000).GetInt32("n"));
                }
            }
            finally
            {
                first.Dispose();
                if (second != null) second.Dispose();
            }
        }

        [Test]
        public void AnOrderlyGatewayShutdownIsNoticedAndRecoveredFrom()
        {
            var first = new GatewayProcess();
            int port = first.Port;
            GatewayProcess second = null;
            try
            {
                using (var connection = new Connection(first.Params("SHUTDOWN")))
                {
                    var disconnected = new ManualResetEvent(false);
                    var reconnected = new ManualResetEvent(false);
                    connection.Disconnected += (sender, e) => disconnected.Set();
                    connection.Reconnected += (sender, e) => reconnected.Set();
                    var inbox = new ManualResetEvent(false);
                    connection.Subscribe("S", (c, s, r, m, t) => inbox.Set());
                    first.Dispose(); // SIGTERM
                    Await.Signal(disconnected, "Disconnected");
                    second = new GatewayProcess(port);
                    Await.Signal(reconnected, "Reconnected", 30000);
                    connection.Flush(5000);
                    connection.SendMessage("S", new Message());
                    Await.Signal(inbox, "the message after reconnecting");
                }
            }
            finally
            {
                first.Dispose();
                if (second != null) second.Dispose();
            }
        }
    }
}
