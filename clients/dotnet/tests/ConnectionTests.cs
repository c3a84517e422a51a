using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Text.RegularExpressions;
using System.Threading;
using NUnit.Framework;

namespace MessagingMesh.Tests
{
    /// <summary>
    /// Client behaviour against <see cref="FakeGateway"/>: handshake and MM/1 fallback, heartbeats,
    /// dead-gateway detection, reconnection, dispatch modes, pending limits, requests, flush, and
    /// the error paths a real gateway does not produce on demand.
    /// </summary>
    [TestFixture]
    public class ConnectionTests
    {
        private FakeGateway gateway;
        private readonly List<IDisposable> cleanup = new List<IDisposable>();

        [SetUp]
        public void StartGateway()
        {
            TestLog.Install();
            gateway = new FakeGateway();
        }

        [TearDown]
        public void StopGateway()
        {
            foreach (var item in cleanup) item.Dispose();
            cleanup.Clear();
            gateway.Dispose();
        }

        private Connection Connect(ConnectionParams parameters = null)
        {
            var connection = new Connection(parameters ?? gateway.Params());
            cleanup.Add(connection);
            return connection;
        }

        private static Connection.SubscriptionCallback Collect(List<Message> into, CountdownEvent done = null)
        {
            return (connection, subject, reply, message, tag) =>
            {
                lock (into) into.Add(message);
                if (done != null) done.Signal();
            };
        }

        // ----- handshake -----

        [Test]
        public void HandshakeAsksForMm2AndAdoptsTheAck()
        {
            var parameters = gateway.Params("VULCAN");
            parameters.ClientName = "orders-service";
            parameters.HeartbeatMs = 1234;
            gateway.HeartbeatMs = 4321;
            var connection = Connect(parameters);
            Assert.AreEqual(2, connection.ProtocolVersion);
            Assert.AreEqual("fake", connection.GatewayName);
            Assert.AreEqual(4321, connection.GatewayHeartbeatMs);
            Assert.AreEqual(64 * 1024 * 1024, connection.GatewayMaxFrame);
            Assert.IsTrue(connection.IsConnected);

            var connect = gateway.WaitFor(f => f.Header.Action == WireAction.Connect);
            Assert.AreEqual("VULCAN", connect.Header.Subject);
            Assert.AreEqual("orders-service", connect.Header.ReplySubject);
            var options = connect.Body;
            Assert.AreEqual(2, options.GetInt32("protocol_version"));
            Assert.AreEqual(Connection.LibraryName, options.GetString("client_name"));
            Assert.AreEqual(1234, options.GetInt32("heartbeat_ms"));
            Assert.IsTrue(options.GetBool("no_responders"));
        }

        [Test]
        public void EmptyAckMeansMm1AndFlushGoesThroughTheInbox()
        {
            gateway.Ack = AckMode.Mm1;
            var parameters = gateway.Params();
            parameters.HeartbeatMs = 20;
            var connection = Connect(parameters);
            Assert.AreEqual(1, connection.ProtocolVersion);
            Assert.AreEqual("", connection.GatewayName);
            for (int i = 0; i < 5; i++) connection.Flush(5000);
            var toInbox = gateway.All(f => f.Header.Action == WireAction.SendMessage);
            Assert.AreEqual(5, toInbox.Count);
            StringAssert.StartsWith(connection.InboxPrefix, toInbox[0].Header.Subject);
            Assert.AreEqual(1, gateway.All(f => f.Header.Action == WireAction.Subscribe).Count, "one inbox subscription");
            Assert.AreEqual(0, gateway.All(f => f.Header.Action == WireAction.Ping).Count,
                            "an MM/1 gateway never receives PING, heartbeats included");
        }

        [Test]
        public void ProtocolVersion1SendsAnEmptyConnectBody()
        {
            var parameters = gateway.Params("VULCAN");
            parameters.ClientName = "X";
            parameters.ProtocolVersion = 1;
            var connection = Connect(parameters);
            Assert.AreEqual(1, connection.ProtocolVersion);
            var connect = gateway.WaitFor(f => f.Header.Action == WireAction.Connect);
            Frames.AssertBytes(TestData.Vector("connect-legacy.bin"), connect.Bytes, "MM/1 CONNECT");
        }

        [Test]
        public void NoAckInTimeIsATimeout()
        {
            gateway.Ack = AckMode.Never;
            var parameters = gateway.Params();
            parameters.AckTimeoutMs = 200;
            var watch = Stopwatch.StartNew();
            Assert.Throws<MeshTimeoutException>(() => new Connection(parameters));
            Assert.That(watch.ElapsedMilliseconds, Is.InRange(150, 5000));
        }

        [Test]
        public void RefusedServiceFailsTheConstructorWithTheGatewaysCode()
        {
            gateway.Ack = AckMode.Refuse;
            var error = Assert.Throws<ConnectionClosedException>(() => new Connection(gateway.Params()));
            StringAssert.Contains("SERVICE_REFUSED", error.Message);
            Assert.IsInstanceOf<GatewayErrorException>(error.InnerException);
        }

        [Test]
        public void NothingListeningFailsTheConstructor()
        {
            var parameters = gateway.Params();
            gateway.Dispose();
            Assert.Throws<ConnectionClosedException>(() => new Connection(parameters));
        }

        [Test]
        public void InvalidParametersAreRejectedBeforeConnecting()
        {
            var parameters = gateway.Params("A.B");
            Assert.Throws<InvalidSubjectException>(() => new Connection(parameters));
            parameters = gateway.Params();
            parameters.ProtocolVersion = 3;
            Assert.Throws<ArgumentException>(() => new Connection(parameters));
        }

        // ----- heartbeats and dead gateways -----

        [Test]
        public void IdleClientSendsHeartbeatPingsAndAnswersGatewayPings()
        {
            var parameters = gateway.Params();
            parameters.HeartbeatMs = 50;
            Connect(parameters);
            gateway.WaitFor(f => f.Header.Action == WireAction.Ping);

            gateway.SendTo(0, TestData.Vector("ping.bin"));
            var pong = gateway.WaitFor(f => f.Header.Action == WireAction.Pong);
            Frames.AssertBytes(TestData.Vector("pong.bin"), pong.Bytes, "PONG echoes the PING body");
        }

        [Test]
        public void SilentGatewayIsDetectedAndTheClientReconnectsAndResubscribes()
        {
            gateway.HeartbeatMs = 100;
            gateway.SilentConnections = 1;
            var parameters = gateway.Params();
            parameters.HeartbeatMs = 0;
            var connection = Connect(parameters);
            var disconnected = new ManualResetEvent(false);
            var reconnected = new ManualResetEvent(false);
            string reason = null;
            connection.Disconnected += (sender, e) => { reason = e.Reason; disconnected.Set(); };
            connection.Reconnected += (sender, e) => reconnected.Set();
            var received = new List<Message>();
            var one = new CountdownEvent(1);
            var subscription = connection.Subscribe("A.*", Collect(received, one));
            var watch = Stopwatch.StartNew();

            Await.Signal(disconnected, "Disconnected");
            Assert.That(watch.ElapsedMilliseconds, Is.GreaterThanOrEqualTo(150), "twice the gateway's interval");
            StringAssert.Contains("nothing received from the gateway", reason);
            Await.Signal(reconnected, "Reconnected");
            Assert.IsTrue(connection.IsConnected);
            Assert.AreEqual(1, connection.Statistics.Reconnects);

            var resubscribe = gateway.WaitFor(f => f.Connection == 1 && f.Header.Action == WireAction.Subscribe);
            Assert.AreEqual(subscription.Id, resubscribe.Header.SubscriptionId);
            Assert.AreEqual("A.*", resubscribe.Header.Subject);
            connection.Flush(5000);
            connection.SendMessage("A.B", new Message().AddInt32("n", 1));
            Await.Signal(one.WaitHandle, "the message after reconnecting");
        }

        // ----- reconnection -----

        [Test]
        public void AfterTheGatewayDropsTheConnectionSubscriptionsAndBufferedPublishesFollowInOrder()
        {
            var parameters = gateway.Params();
            parameters.ReconnectDelayMs = 200;
            parameters.ReconnectMaxDelayMs = 400;
            var connection = Connect(parameters);
            var received = new List<Message>();
            var arrived = new CountdownEvent(1);
            var first = connection.Subscribe("X.>", Collect(received, arrived));
            var second = connection.Subscribe("Y.*", Collect(received), "tag");
            connection.Subscribe("Z", Collect(received)).Dispose();
            var responder = connection.Subscribe("SVC", (c, subject, reply, message, tag) =>
                c.SendReply(reply, new Message().AddString("ok", "yes")));
            Assert.AreEqual("yes", connection.SendRequest("SVC", new Message(), 5000).GetString("ok"));

            var disconnected = new ManualResetEvent(false);
            var reconnected = new ManualResetEvent(false);
            connection.Disconnected += (sender, e) =>
            {
                // Published while the gateway is away: buffered, sent after resubscribing.
                connection.SendMessage("X.during", new Message().AddInt32("n", 1));
                disconnected.Set();
            };
            connection.Reconnected += (sender, e) => reconnected.Set();
            gateway.KillConnections();
            Await.Signal(disconnected, "Disconnected");
            Await.Signal(reconnected, "Reconnected");
            Await.Signal(arrived.WaitHandle, "the message published during the outage");
            Assert.AreEqual(1, received[0].GetInt32("n"));

            var afterReconnect = gateway.All(f => f.Connection == 1);
            var subscribes = afterReconnect.Where(f => f.Header.Action == WireAction.Subscribe).ToList();
            CollectionAssert.AreEqual(
                new[] { connection.InboxPrefix + "*", "X.>", "Y.*", "SVC" },
                subscribes.Select(f => f.Header.Subject).ToArray(), "resubscribed, without the disposed one");
            CollectionAssert.AreEqual(
                new[] { first.Id, second.Id, responder.Id },
                subscribes.Skip(1).Select(f => f.Header.SubscriptionId).ToArray(), "same ids");
            int lastSubscribe = afterReconnect.FindLastIndex(f => f.Header.Action == WireAction.Subscribe);
            int publish = afterReconnect.FindIndex(f => f.Header.Subject == "X.during");
            Assert.Greater(publish, lastSubscribe, "the buffered publish follows the subscriptions");
            Assert.AreEqual("yes", connection.SendRequest("SVC", new Message(), 5000).GetString("ok"));
        }

        [Test]
        public void GivingUpReconnectingClosesTheConnection()
        {
            var parameters = gateway.Params();
            parameters.MaxReconnectAttempts = 2;
            var connection = Connect(parameters);
            var closed = new ManualResetEvent(false);
            string reason = null;
            connection.Closed += (sender, e) => { reason = e.Reason; closed.Set(); };
            gateway.Dispose();
            Await.Signal(closed, "Closed");
            StringAssert.Contains("gave up reconnecting", reason);
            Assert.AreEqual(ConnectionState.Closed, connection.State);
            Assert.Throws<ConnectionClosedException>(() => connection.SendMessage("A", new Message()));
        }

        [Test]
        public void WithoutReconnectALostGatewayClosesTheConnection()
        {
            var parameters = gateway.Params();
            parameters.Reconnect = false;
            var connection = Connect(parameters);
            var closed = new ManualResetEvent(false);
            connection.Closed += (sender, e) => closed.Set();
            gateway.KillConnections();
            Await.Signal(closed, "Closed");
            Assert.AreEqual(ConnectionState.Closed, connection.State);
        }

        [Test]
        public void PublishingIntoAFullBufferWhileReconnectingFails()
        {
            var parameters = gateway.Params();
            parameters.ReconnectDelayMs = 60000;
            parameters.ReconnectMaxDelayMs = 60000;
            parameters.MaxOutboundBytes = 1000;
            var connection = Connect(parameters);
            var disconnected = new ManualResetEvent(false);
            connection.Disconnected += (sender, e) => disconnected.Set();
            gateway.KillConnections();
            Await.Signal(disconnected, "Disconnected");
            Assert.AreEqual(ConnectionState.Reconnecting, connection.State);
            var payload = new Message().AddBlob("b", new byte[100]);
            Assert.Throws<NotConnectedException>(() =>
            {
                for (int i = 0; i < 100; i++) connection.SendMessage("A", payload);
            });
        }

        [Test]
        public void OversizedFrameFromTheGatewayDropsTheConnection()
        {
            var parameters = gateway.Params();
            parameters.MaxFrame = 1000;
            var connection = Connect(parameters);
            var disconnected = new ManualResetEvent(false);
            string reason = null;
            connection.Disconnected += (sender, e) => { reason = e.Reason; disconnected.Set(); };
            var frame = new byte[21];
            Wire.WriteInt32(frame, 0, 1001);
            gateway.SendTo(0, frame);
            Await.Signal(disconnected, "Disconnected");
            StringAssert.Contains("frame length 1001 exceeds the maximum of 1000", reason);
        }

        // ----- subscriptions and dispatch -----

        [Test]
        public void CallbackThreadDeliversWithSubjectReplySubjectAndTag()
        {
            var connection = Connect();
            var done = new ManualResetEvent(false);
            string gotSubject = null;
            string gotReply = null;
            object gotTag = null;
            Message got = null;
            Thread callbackThread = null;
            connection.Subscribe("PRICES.*.>", (c, subject, reply, message, tag) =>
            {
                gotSubject = subject;
                gotReply = reply;
                gotTag = tag;
                got = message;
                callbackThread = Thread.CurrentThread;
                done.Set();
            }, "my tag");
            connection.Flush();
            connection.SendMessage("PRICES.IBM.NYSE", new Message().AddDouble("px", 1.5), "R.1");
            Await.Signal(done, "delivery");
            Assert.AreEqual("PRICES.IBM.NYSE", gotSubject);
            Assert.AreEqual("R.1", gotReply);
            Assert.AreEqual("my tag", gotTag);
            Assert.AreEqual(1.5, got.GetDouble("px"));
            Assert.AreNotEqual(Thread.CurrentThread, callbackThread);
            StringAssert.Contains("dispatcher", callbackThread.Name);
        }

        [Test]
        public void OverlappingSubscriptionsEachGetTheMessage()
        {
            var connection = Connect();
            var received = new List<Message>();
            var both = new CountdownEvent(2);
            connection.Subscribe("A.B", Collect(received, both));
            connection.Subscribe("A.*", Collect(received, both));
            connection.Flush();
            connection.SendMessage("A.B", new Message().AddInt32("n", 1));
            Await.Signal(both.WaitHandle, "two deliveries");
        }

        [Test]
        public void UnsubscribeSendsItsIdAndStopsDelivery()
        {
            var connection = Connect();
            var received = new List<Message>();
            var stay = new CountdownEvent(2);
            var gone = connection.Subscribe("A", Collect(received));
            connection.Subscribe("A", Collect(new List<Message>(), stay));
            gone.Dispose();
            gone.Dispose();
            Assert.IsFalse(gone.IsActive);
            var unsubscribe = gateway.WaitFor(f => f.Header.Action == WireAction.Unsubscribe);
            Assert.AreEqual(gone.Id, unsubscribe.Header.SubscriptionId);
            Assert.AreEqual("", unsubscribe.Header.Subject);
            connection.Flush();
            connection.SendMessage("A", new Message());
            connection.SendMessage("A", new Message());
            Await.Signal(stay.WaitHandle, "the remaining subscription's messages");
            Assert.AreEqual(0, received.Count);
            Assert.AreEqual(1, gateway.All(f => f.Header.Action == WireAction.Unsubscribe).Count);
        }

        [Test]
        public void SubscriptionIdsStartAtOneAndAreNeverReused()
        {
            var connection = Connect();
            var a = connection.Subscribe("A", Collect(new List<Message>()));
            var b = connection.Subscribe("B", Collect(new List<Message>()));
            a.Dispose();
            var c = connection.Subscribe("A", Collect(new List<Message>()));
            Assert.AreEqual(1u, a.Id);
            Assert.AreEqual(2u, b.Id);
            Assert.AreEqual(3u, c.Id);
        }

        [Test]
        public void ACallbackThatThrowsDoesNotStopDispatch()
        {
            var connection = Connect();
            var done = new CountdownEvent(3);
            connection.Subscribe("A", (c, subject, reply, message, tag) =>
            {
                done.Signal();
                throw new InvalidOperationException("boom");
            });
            connection.Flush();
            for (int i = 0; i < 3; i++) connection.SendMessage("A", new Message());
            Await.Signal(done.WaitHandle, "three callbacks despite exceptions");
            Await.Condition(() => TestLog.Count("callback for \"A\" threw") == 3, "three log lines");
        }

        [Test]
        public void QueueModeRunsCallbacksOnlyInsideProcessMessageQueue()
        {
            var parameters = gateway.Params();
            parameters.DispatchMode = DispatchMode.Queue;
            var connection = Connect(parameters);
            var threads = new List<Thread>();
            connection.Subscribe("A", (c, subject, reply, message, tag) => threads.Add(Thread.CurrentThread));
            connection.Flush();
            for (int i = 0; i < 5; i++) connection.SendMessage("A", new Message().AddInt32("i", i));
            connection.Flush(); // the fake answers the PING after routing the five messages
            Assert.AreEqual(5, connection.QueuedMessages);
            Assert.AreEqual(0, threads.Count);

            var result = connection.ProcessMessageQueue(0, 2);
            Assert.AreEqual(2, result.Processed);
            Assert.AreEqual(3, result.Remaining);
            result = connection.ProcessMessageQueue(1000);
            Assert.AreEqual(3, result.Processed);
            Assert.AreEqual(0, result.Remaining);
            Assert.IsTrue(threads.All(t => t == Thread.CurrentThread));

            var watch = Stopwatch.StartNew();
            result = connection.ProcessMessageQueue(100, 10);
            Assert.AreEqual(0, result.Processed);
            Assert.AreEqual(0, result.Remaining);
            Assert.That(watch.ElapsedMilliseconds, Is.GreaterThanOrEqualTo(90));
        }

        [Test]
        public void ProcessMessageQueueWaitsForTheFirstMessage()
        {
            var parameters = gateway.Params();
            parameters.DispatchMode = DispatchMode.Queue;
            var connection = Connect(parameters);
            var received = new List<Message>();
            connection.Subscribe("A", Collect(received));
            connection.Flush();
            var publisher = new Thread(() => connection.SendMessage("A", new Message().AddInt32("i", 1)));
            publisher.Start();
            var result = connection.ProcessMessageQueue(10000);
            Assert.AreEqual(1, result.Processed);
            Assert.AreEqual(1, received.Count);
            publisher.Join();
        }

        [Test]
        public void ProcessMessageQueueIsRefusedInCallbackMode()
        {
            var connection = Connect();
            Assert.Throws<InvalidOperationException>(() => connection.ProcessMessageQueue(0));
        }

        [Test]
        public void PendingLimitDropsCountsAndReportsOncePerEpisode()
        {
            var parameters = gateway.Params();
            parameters.DispatchMode = DispatchMode.Queue;
            parameters.PendingMessageLimit = 5;
            var connection = Connect(parameters);
            var errors = new List<ConnectionErrorEventArgs>();
            var reported = new Semaphore(0, 100);
            connection.Error += (sender, e) => { lock (errors) errors.Add(e); reported.Release(); };
            var subscription = connection.Subscribe("A", Collect(new List<Message>()));
            connection.Flush();
            for (int i = 0; i < 10; i++) connection.SendMessage("A", new Message().AddInt32("i", i));
            connection.Flush();
            Assert.AreEqual(5, subscription.PendingMessages);
            Assert.AreEqual(5, subscription.Dropped);
            Assert.AreEqual(5, connection.Statistics.MessagesDropped);
            Await.Signal(reported, "the pending-limit report");
            Assert.IsInstanceOf<PendingLimitException>(errors[0].Exception);
            Assert.AreSame(subscription, errors[0].Subscription);
            Assert.AreEqual(5, connection.ProcessMessageQueue(0).Processed);
            Assert.AreEqual(5, subscription.Delivered);

            // A second episode is reported again.
            for (int i = 0; i < 7; i++) connection.SendMessage("A", new Message().AddInt32("i", i));
            connection.Flush();
            Await.Signal(reported, "the second report");
            Assert.AreEqual(7, subscription.Dropped);
            lock (errors) Assert.AreEqual(2, errors.Count);
        }

        [Test]
        public void APendingLimitOverflowIsAdvisedToTheConnectionsOwnAdvisorySubscriptions()
        {
            var parameters = gateway.Params();
            parameters.DispatchMode = DispatchMode.Queue;
            parameters.PendingMessageLimit = 5;
            parameters.ClientName = "overwhelmed";
            var connection = Connect(parameters);
            var advisories = new List<KeyValuePair<string, Message>>();
            connection.Subscribe("_MM.ADVISORY.>", (c, subject, reply, message, tag) =>
            {
                lock (advisories) advisories.Add(new KeyValuePair<string, Message>(subject, message));
            });
            var subscription = connection.Subscribe("A", Collect(new List<Message>()));
            connection.Flush();
            for (int i = 0; i < 10; i++) connection.SendMessage("A", new Message().AddInt32("i", i));
            connection.Flush();
            // The five messages kept, and the advisory.
            Assert.AreEqual(6, connection.ProcessMessageQueue(0).Processed);
            lock (advisories)
            {
                Assert.AreEqual(1, advisories.Count);
                Assert.AreEqual(Advisories.MessagesDropped, advisories[0].Key);
                var advisory = advisories[0].Value;
                Assert.AreEqual("TEST", advisory.GetString("service"));
                Assert.AreEqual("overwhelmed", advisory.GetString("client_name"));
                Assert.AreEqual(subscription.Id, advisory.GetUInt32("subscription_id"));
                Assert.AreEqual("A", advisory.GetString("pattern"));
                Assert.AreEqual(1UL, advisory.GetUInt64("dropped"));
                Assert.AreEqual(5UL, advisory.GetUInt64("limit_messages"));
                Assert.AreEqual(0UL, advisory.GetUInt64("suppressed"));
                Assert.That(advisory.GetUInt64("time_ms"), Is.GreaterThan(0UL));
                StringAssert.Contains("passed its pending limit", advisory.GetString("text"));
            }
            Assert.AreEqual(5, subscription.Dropped);
            // Local only: nothing was sent to the gateway on an advisory subject.
            Assert.IsEmpty(gateway.All(frame => frame.Header.Action == WireAction.SendMessage
                                                && frame.Header.Subject.StartsWith(Advisories.Prefix)));
        }

        [Test]
        public void PendingByteLimitAlsoApplies()
        {
            var parameters = gateway.Params();
            parameters.DispatchMode = DispatchMode.Queue;
            parameters.PendingByteLimit = 1000;
            var connection = Connect(parameters);
            var subscription = connection.Subscribe("A", Collect(new List<Message>()));
            connection.Flush();
            var payload = new Message().AddBlob("b", new byte[300]);
            for (int i = 0; i < 5; i++) connection.SendMessage("A", payload);
            connection.Flush();
            Assert.AreEqual(3, subscription.PendingMessages);
            Assert.AreEqual(2, subscription.Dropped);
        }

        [Test]
        public void UndecodableBodyIsDroppedAndReportedWithItsSubject()
        {
            var connection = Connect();
            var received = new List<Message>();
            var good = new ManualResetEvent(false);
            connection.Subscribe("A.*", (c, subject, reply, message, tag) => { received.Add(message); good.Set(); });
            var errors = new List<ConnectionErrorEventArgs>();
            var reported = new ManualResetEvent(false);
            connection.Error += (sender, e) => { errors.Add(e); reported.Set(); };
            connection.Flush();
            uint id = gateway.SubscriptionId(0, "A.*");
            // Field type 0 (NOT_SET) is a decode error; the header is fine.
            var bad = Frames.Encode(id, "A.bad", "", WireAction.SendMessage, null);
            var body = new byte[] { 1, 0, 0, 0, 1, 0, 0, 0, (byte)'x', 0 };
            var frame = new byte[bad.Length - 4 + body.Length];
            Buffer.BlockCopy(bad, 0, frame, 0, bad.Length - 4);
            Buffer.BlockCopy(body, 0, frame, bad.Length - 4, body.Length);
            Wire.WriteInt32(frame, 0, frame.Length);
            gateway.SendTo(0, frame);
            gateway.SendTo(0, Frames.Encode(id, "A.good", "", WireAction.SendMessage, new Message().AddInt32("ok", 1)));
            Await.Signal(good, "the good message");
            Await.Signal(reported, "the decode error report");
            Assert.AreEqual(1, received.Count);
            Assert.AreEqual(1, received[0].GetInt32("ok"));
            Assert.IsInstanceOf<DecodeException>(errors[0].Exception);
            Assert.AreEqual("A.bad", errors[0].Subject);
            Assert.AreEqual(1, connection.Statistics.UndecodableMessages);
            Assert.IsTrue(connection.IsConnected, "the connection stays up");
        }

        [Test]
        public void Nest65IsDroppedButNest64Delivered()
        {
            var connection = Connect();
            var received = new List<Message>();
            var delivered = new ManualResetEvent(false);
            var reported = new ManualResetEvent(false);
            connection.Subscribe("NEST.*", (c, s, r, m, t) => { received.Add(m); delivered.Set(); });
            connection.Error += (sender, e) => reported.Set();
            connection.Flush();
            uint id = gateway.SubscriptionId(0, "NEST.*");
            var nest65 = TestData.Vector("nest-65.bin");
            var nest64 = TestData.Vector("nest-64.bin");
            Wire.WriteInt32(nest65, 4, (int)id);
            Wire.WriteInt32(nest64, 4, (int)id);
            gateway.SendTo(0, nest65);
            gateway.SendTo(0, nest64);
            Await.Signal(reported, "the nest-65 report");
            Await.Signal(delivered, "nest-64");
            Assert.AreEqual(1, received.Count);
        }

        [Test]
        public void GatewayErrorsAreReported()
        {
            var connection = Connect();
            var reported = new ManualResetEvent(false);
            ConnectionErrorEventArgs error = null;
            connection.Error += (sender, e) => { error = e; reported.Set(); };
            gateway.SendTo(0, TestData.Vector("error-invalid-subject.bin"));
            Await.Signal(reported, "the ERROR report");
            var gatewayError = (GatewayErrorException)error.Exception;
            Assert.AreEqual("INVALID_SUBJECT", gatewayError.Code);
            Assert.AreEqual("empty token at position 2", gatewayError.Text);
            Assert.AreEqual("bad..subject", gatewayError.Subject);
            Assert.AreEqual(3u, gatewayError.SubscriptionId);
            Assert.AreEqual("bad..subject", error.Subject);
        }

        [Test]
        public void UnknownActionsAreIgnored()
        {
            var connection = Connect();
            var delivered = new ManualResetEvent(false);
            connection.Subscribe("A", (c, s, r, m, t) => delivered.Set());
            connection.Flush();
            var unknown = Frames.Encode(0, "", "", (WireAction)42, new Message().AddInt32("x", 1));
            gateway.SendTo(0, unknown);
            connection.SendMessage("A", new Message());
            Await.Signal(delivered, "the message after an unknown action");
            Assert.IsTrue(connection.IsConnected);
        }

        // ----- requests -----

        private static void Respond(Connection connection, string subject)
        {
            connection.Subscribe(subject, (c, s, reply, message, tag) =>
                c.SendReply(reply, new Message().AddDouble("sum", message.GetDouble("A") + message.GetDouble("B"))));
        }

        [Test]
        public void RequestsShareOneInboxSubscriptionWithACounterAsLastToken()
        {
            var connection = Connect();
            Respond(connection, "Service.Add");
            for (int i = 0; i < 3; i++)
            {
                var reply = connection.SendRequest("Service.Add", new Message().AddDouble("A", i).AddDouble("B", 0.5), 5000);
                Assert.AreEqual(i + 0.5, reply.GetDouble("sum"));
            }
            var inboxSubscriptions = gateway.All(f => f.Header.Action == WireAction.Subscribe
                                                      && f.Header.Subject.StartsWith("_INBOX."));
            Assert.AreEqual(1, inboxSubscriptions.Count);
            StringAssert.IsMatch("^_INBOX\\.[0-9A-Za-z]{22}\\.\\*$", inboxSubscriptions[0].Header.Subject);
            var requests = gateway.All(f => f.Header.Subject == "Service.Add" && f.Header.Action == WireAction.SendMessage);
            Assert.AreEqual(3, requests.Count);
            var counters = requests.Select(f => f.Header.ReplySubject.Substring(connection.InboxPrefix.Length)).ToArray();
            CollectionAssert.AreEqual(new[] { "1", "2", "3" }, counters);
            Assert.AreNotEqual(connection.InboxPrefix, Connect().InboxPrefix, "every connection has its own inbox");
        }

        [Test]
        public void TheFirstRequestWaitsForAMeshWideFlushOfTheInbox()
        {
            var connection = Connect();
            Respond(connection, "Service.Add");
            connection.SendRequest("Service.Add", new Message().AddDouble("A", 1).AddDouble("B", 2), 5000);
            connection.SendRequest("Service.Add", new Message().AddDouble("A", 1).AddDouble("B", 2), 5000);
            var sequence = gateway.All(f => f.Header.Action != WireAction.Connect);
            int inbox = sequence.FindIndex(f => f.Header.Action == WireAction.Subscribe && f.Header.Subject.StartsWith("_INBOX."));
            int ping = sequence.FindIndex(f => f.Header.Action == WireAction.Ping);
            int request = sequence.FindIndex(f => f.Header.Subject == "Service.Add" && f.Header.Action == WireAction.SendMessage);
            Assert.That(inbox, Is.LessThan(ping));
            Assert.That(ping, Is.LessThan(request));
            Assert.IsTrue(sequence[ping].Body.GetBool("mesh"));
            Assert.AreEqual(1, gateway.All(f => f.Header.Action == WireAction.Ping).Count, "only before the first request");
        }

        [Test]
        public void NoRespondersFailsTheRequestAtOnce()
        {
            var connection = Connect();
            var watch = Stopwatch.StartNew();
            var error = Assert.Throws<NoRespondersException>(() => connection.SendRequest("Nobody.Home", new Message(), 10000));
            Assert.Less(watch.ElapsedMilliseconds, 5000);
            Assert.AreEqual("Nobody.Home", error.Subject);
            Assert.IsNotInstanceOf<MeshTimeoutException>(error);
        }

        [Test]
        public void NoRespondersIsNotRequestedWhenTurnedOff()
        {
            var parameters = gateway.Params();
            parameters.NoResponders = false;
            var connection = Connect(parameters);
            Assert.IsFalse(gateway.WaitFor(f => f.Header.Action == WireAction.Connect).Body.GetBool("no_responders"));
            Assert.Throws<MeshTimeoutException>(() => connection.SendRequest("Nobody.Home", new Message(), 200));
        }

        [Test]
        public void UnansweredRequestTimesOutAndALateReplyIsIgnored()
        {
            var connection = Connect();
            string replyTo = null;
            var asked = new ManualResetEvent(false);
            connection.Subscribe("Slow", (c, s, reply, m, t) => { replyTo = reply; asked.Set(); });
            var watch = Stopwatch.StartNew();
            var error = Assert.Throws<MeshTimeoutException>(() => connection.SendRequest("Slow", new Message(), 300));
            Assert.That(watch.ElapsedMilliseconds, Is.InRange(290, 5000));
            StringAssert.Contains("Slow", error.Message);
            Assert.IsNotInstanceOf<NoRespondersException>(error);
            Await.Signal(asked, "the request at the responder");
            connection.SendReply(replyTo, new Message().AddString("late", "yes"));
            connection.Flush();
            Assert.IsTrue(connection.IsConnected);
        }

        [Test]
        public void SendRequestWorksFromInsideACallback()
        {
            // The responder has its own connection: a callback that waits for another callback of
            // the same connection would wait for its own dispatcher thread.
            var responder = Connect();
            Respond(responder, "Inner.Add");
            responder.Flush();
            var connection = Connect();
            connection.Subscribe("Outer", (c, s, reply, message, tag) =>
            {
                var inner = c.SendRequest("Inner.Add", new Message().AddDouble("A", 2).AddDouble("B", 3), 5000);
                c.SendReply(reply, new Message().AddDouble("twice", 2 * inner.GetDouble("sum")));
            });
            connection.Flush();
            var result = responder.SendRequest("Outer", new Message(), 5000);
            Assert.AreEqual(10.0, result.GetDouble("twice"));
        }

        [Test]
        public void SendRequestWorksFromInsideAQueueModeCallback()
        {
            var responderParams = gateway.Params();
            var responder = Connect(responderParams);
            Respond(responder, "Inner.Add");
            responder.Flush();
            var parameters = gateway.Params();
            parameters.DispatchMode = DispatchMode.Queue;
            var connection = Connect(parameters);
            double answer = 0;
            connection.Subscribe("Outer", (c, s, reply, message, tag) =>
                answer = c.SendRequest("Inner.Add", new Message().AddDouble("A", 2).AddDouble("B", 3), 5000).GetDouble("sum"));
            connection.Flush();
            responder.SendMessage("Outer", new Message());
            Assert.AreEqual(1, connection.ProcessMessageQueue(5000).Processed);
            Assert.AreEqual(5.0, answer);
        }

        [Test]
        public void AsyncRequestsCompleteAndTimeOut()
        {
            var connection = Connect();
            Respond(connection, "Service.Add");
            var tasks = Enumerable.Range(0, 20)
                .Select(i => connection.SendRequestAsync("Service.Add", new Message().AddDouble("A", i).AddDouble("B", 1), 5000))
                .ToArray();
            for (int i = 0; i < tasks.Length; i++) Assert.AreEqual(i + 1.0, tasks[i].Result.GetDouble("sum"));
            var timeout = connection.SendRequestAsync("Nowhere.Slow", new Message(), 10000);
            var noResponders = Assert.Throws<AggregateException>(() => timeout.Wait());
            Assert.IsInstanceOf<NoRespondersException>(noResponders.InnerException);
            connection.Subscribe("Silent", (c, s, r, m, t) => { });
            var silent = connection.SendRequestAsync("Silent", new Message(), 200);
            var timedOut = Assert.Throws<AggregateException>(() => silent.Wait());
            Assert.IsInstanceOf<MeshTimeoutException>(timedOut.InnerException);
        }

        [Test]
        public void ConcurrentRequestsFromManyThreadsGetTheirOwnReplies()
        {
            var connection = Connect();
            Respond(connection, "Service.Add");
            var failures = new List<string>();
            var threads = Enumerable.Range(0, 8).Select(t => new Thread(() =>
            {
                for (int i = 0; i < 200; i++)
                {
                    double sum = connection.SendRequest("Service.Add", new Message().AddDouble("A", t).AddDouble("B", i), 10000).GetDouble("sum");
                    if (sum != t + i) lock (failures) failures.Add(t + "+" + i + "=" + sum);
                }
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
            CollectionAssert.IsEmpty(failures);
        }

        // ----- flush -----

        [Test]
        public void FlushSendsAPingAndMeshFlushAsksForTheMesh()
        {
            var connection = Connect();
            connection.Flush(5000);
            connection.Flush(5000, meshWide: true);
            var pings = gateway.All(f => f.Header.Action == WireAction.Ping);
            Assert.AreEqual(2, pings.Count);
            Assert.IsFalse(pings[0].Body.HasField("mesh"));
            Assert.IsTrue(pings[1].Body.GetBool("mesh"));
        }

        [Test]
        public void FlushTimesOutWhenThePongNeverComes()
        {
            gateway.AnswerPings = false;
            var connection = Connect();
            Assert.Throws<MeshTimeoutException>(() => connection.Flush(200));
        }

        // ----- publishing -----

        [Test]
        public void SubjectsAreValidatedBeforeSending()
        {
            var connection = Connect();
            var error = Assert.Throws<InvalidSubjectException>(() => connection.SendMessage("A..B", new Message()));
            Assert.AreEqual(2, error.Position);
            Assert.Throws<InvalidSubjectException>(() => connection.SendMessage("A.*", new Message()));
            Assert.Throws<InvalidSubjectException>(() => connection.SendMessage("A", new Message(), "R.>"));
            Assert.Throws<InvalidSubjectException>(() => connection.Subscribe("A.b*", Collect(new List<Message>())));
            Assert.Throws<InvalidSubjectException>(() => connection.SendRequest("A B", new Message(), 100));
            var reserved = Assert.Throws<InvalidSubjectException>(() => connection.SendMessage("_MM.STATS", new Message()));
            Assert.AreEqual("subject `_MM.STATS` is reserved to the gateway (only requests may be sent there)",
                            reserved.Message);
            Assert.Throws<ArgumentException>(() => connection.SendReply("", new Message()));
            connection.Flush();
            Assert.AreEqual(0, gateway.All(f => f.Header.Action == WireAction.SendMessage).Count);
        }

        [Test]
        public void FramesLargerThanTheGatewayAcceptsAreRefused()
        {
            var connection = Connect();
            var tooBig = new Message().AddBlob("b", new byte[connection.GatewayMaxFrame]);
            Assert.Throws<EncodeException>(() => connection.SendMessage("A", tooBig));
            connection.SendMessage("A", new Message().AddInt32("after", 1));
            connection.Flush();
            Assert.AreEqual(1, gateway.All(f => f.Header.Action == WireAction.SendMessage).Count);
        }

        [Test]
        public void ManySmallPublishesLeaveInFewSocketWrites()
        {
            gateway.RecordMessages = false;
            gateway.Route = false;
            var connection = Connect();
            const int count = 200000;
            var message = new Message().AddInt32("#", 1);
            for (int i = 0; i < count; i++) connection.SendMessage("A.B", message);
            connection.Flush(30000);
            gateway.WaitForMessageCount(count);
            var statistics = connection.Statistics;
            Assert.AreEqual(count, statistics.MessagesSent);
            // One write per frame would be 200 000; batching gives 40–200 frames per write (fewer when
            // the machine is busy and the writer catches up more often).
            Assert.Less(statistics.SocketWrites, count / 20,
                        "frames per write: " + (double)count / statistics.SocketWrites);
        }

        [Test]
        public void StatisticsPrintEveryCounter()
        {
            var statistics = new ConnectionStatistics
            {
                MessagesSent = 1200, BytesSent = 48000, SocketWrites = 12, FramesReceived = 1300,
                BytesReceived = 52000, MessagesDropped = 3, UndecodableMessages = 1, Reconnects = 2,
            };
            Assert.AreEqual("1200 messages sent (48000 bytes in 12 socket writes), 1300 frames received "
                            + "(52000 bytes), 3 messages dropped at pending limits, 1 undecodable, 2 reconnects",
                            statistics.ToString());
            StringAssert.StartsWith("0 messages sent", Connect().Statistics.ToString());
        }

        [Test]
        public void APublisherWaitsWhileTheOutboundBufferIsFull()
        {
            gateway.RecordMessages = false;
            gateway.Route = false;
            var parameters = gateway.Params();
            parameters.MaxOutboundBytes = 64 * 1024;
            var connection = Connect(parameters);
            connection.Flush();
            gateway.Reading.Reset();
            const int count = 40000; // 40 MB: more than the socket buffers hold
            var message = new Message().AddBlob("b", new byte[1000]);
            var publisher = new Thread(() =>
            {
                for (int i = 0; i < count; i++) connection.SendMessage("A", message);
            });
            publisher.Start();
            // The publisher blocks (without spinning) once the socket and the buffer are full.
            Await.Condition(() => (publisher.ThreadState & System.Threading.ThreadState.WaitSleepJoin) != 0
                                  && connection.PendingOutboundBytes >= parameters.MaxOutboundBytes,
                            "the publisher to wait for room");
            Assert.IsTrue(publisher.IsAlive);
            Assert.That(connection.PendingOutboundBytes, Is.LessThan(parameters.MaxOutboundBytes + 2000));
            gateway.Reading.Set();
            Assert.IsTrue(publisher.Join(30000), "the publisher finishes once the gateway reads again");
            connection.Flush(30000);
            gateway.WaitForMessageCount(count);
        }

        [Test]
        public void PublishersOnSeveralThreadsKeepTheirOwnOrder()
        {
            var connection = Connect();
            const int perThread = 5000;
            var last = new int[4];
            var errors = new List<string>();
            var all = new CountdownEvent(4 * perThread);
            connection.Subscribe("T.*", (c, subject, r, message, tag) =>
            {
                int thread = message.GetInt32("t");
                int sequence = message.GetInt32("seq");
                if (sequence != last[thread] + 1) lock (errors) errors.Add(thread + ": " + sequence + " after " + last[thread]);
                last[thread] = sequence;
                all.Signal();
            });
            connection.Flush();
            var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
            {
                for (int i = 1; i <= perThread; i++)
                {
                    connection.SendMessage("T." + t, new Message().AddInt32("t", t).AddInt32("seq", i));
                }
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
            Await.Signal(all.WaitHandle, "every message", 30000);
            CollectionAssert.IsEmpty(errors);
        }

        // ----- closing -----

        [Test]
        public void DisposeSendsDisconnectFailsPendingRequestsAndRaisesClosed()
        {
            var connection = Connect();
            connection.Subscribe("Never", (c, s, r, m, t) => { });
            var closed = new ManualResetEvent(false);
            connection.Closed += (sender, e) => closed.Set();
            Exception requestError = null;
            var started = new ManualResetEvent(false);
            var requester = new Thread(() =>
            {
                try
                {
                    started.Set();
                    connection.SendRequest("Never", new Message(), 30000);
                }
                catch (Exception exception)
                {
                    requestError = exception;
                }
            });
            requester.Start();
            Await.Signal(started, "the requester");
            gateway.WaitFor(f => f.Header.Subject == "Never" && f.Header.Action == WireAction.SendMessage);
            connection.Dispose();
            connection.Dispose();
            Assert.IsTrue(requester.Join(5000));
            Assert.IsInstanceOf<ConnectionClosedException>(requestError);
            Await.Signal(closed, "Closed");
            gateway.WaitFor(f => f.Header.Action == WireAction.Disconnect);
            Assert.AreEqual(ConnectionState.Closed, connection.State);
            Assert.Throws<ConnectionClosedException>(() => connection.SendMessage("A", new Message()));
            Assert.Throws<ConnectionClosedException>(() => connection.Subscribe("A", (c, s, r, m, t) => { }));
            Assert.Throws<ConnectionClosedException>(() => connection.Flush(100));
        }

        [Test]
        public void DisposeFromInsideACallbackWorks()
        {
            var connection = Connect();
            var closed = new ManualResetEvent(false);
            connection.Closed += (sender, e) => closed.Set();
            connection.Subscribe("Bye", (c, s, r, m, t) => c.Dispose());
            connection.Flush();
            connection.SendMessage("Bye", new Message());
            Await.Signal(closed, "Closed");
        }

        [Test]
        public void DisposeWakesAQueueModeWaiter()
        {
            var parameters = gateway.Params();
            parameters.DispatchMode = DispatchMode.Queue;
            var connection = Connect(parameters);
            Exception error = null;
            var waiter = new Thread(() =>
            {
                try
                {
                    connection.ProcessMessageQueue(-1);
                }
                catch (Exception exception)
                {
                    error = exception;
                }
            });
            waiter.Start();
            connection.Dispose();
            Assert.IsTrue(waiter.Join(5000));
            Assert.IsInstanceOf<ConnectionClosedException>(error);
        }
    }
}
