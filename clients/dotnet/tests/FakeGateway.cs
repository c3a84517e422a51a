using System;
using System.Collections.Generic;
using System.Net;
using System.Net.Sockets;
using System.Threading;
using NUnit.Framework;

namespace MessagingMesh.Tests
{
    /// <summary>How a <see cref="FakeGateway"/> answers CONNECT.</summary>
    internal enum AckMode
    {
        /// <summary>ACK with an MM/2 body.</summary>
        Mm2,
        /// <summary>Empty ACK, as an MM/1 gateway sends.</summary>
        Mm1,
        /// <summary>Never answer.</summary>
        Never,
        /// <summary>ERROR SERVICE_REFUSED, then close.</summary>
        Refuse,
    }

    /// <summary>One frame a client sent to the fake gateway.</summary>
    internal sealed class ReceivedFrame
    {
        internal int Connection;
        internal FrameHeader Header;
        internal byte[] Bytes;

        internal Message Body { get { return Header.DecodeBody(Bytes, 0, Bytes.Length); } }

        public override string ToString()
        {
            return "#" + Connection + " " + Header.Action + " id=" + Header.SubscriptionId + " \""
                   + Header.Subject + "\" reply=\"" + Header.ReplySubject + "\"";
        }
    }

    /// <summary>
    /// A scriptable stand-in for the gateway, speaking the wire protocol over real sockets, for
    /// testing client behaviour the real gateway cannot be made to show on demand: an MM/1 ACK,
    /// a refused service, silence, undecodable bodies, oversized frames, unknown actions. It routes
    /// SEND_MESSAGE to matching subscriptions (one frame per subscription, id patched, SPEC §6.3),
    /// answers PING with PONG and sends NO_RESPONDERS like the real one.
    /// </summary>
    internal sealed class FakeGateway : IDisposable
    {
        private readonly TcpListener listener;
        private readonly Thread acceptThread;
        private readonly object sync = new object();
        private readonly List<ReceivedFrame> frames = new List<ReceivedFrame>();
        private readonly List<Client> clients = new List<Client>();
        private volatile bool stopped;

        internal AckMode Ack = AckMode.Mm2;
        internal int HeartbeatMs;
        internal bool AnswerPings = true;
        internal bool Route = true;
        /// <summary>Connections (counted from 0) that get their ACK and then nothing at all.</summary>
        internal int SilentConnections;
        /// <summary>Keep SEND_MESSAGE frames in <see cref="Frames"/> (off for load tests).</summary>
        internal bool RecordMessages = true;
        internal long MessagesReceived;
        /// <summary>Reset to stop reading from clients (their sockets fill up); set to go on.</summary>
        internal readonly ManualResetEvent Reading = new ManualResetEvent(true);

        private sealed class Client
        {
            internal int Index;
            internal Socket Socket;
            internal readonly object WriteLock = new object();
            internal readonly List<KeyValuePair<uint, string>> Subscriptions = new List<KeyValuePair<uint, string>>();
            internal bool WantsNoResponders;
            internal bool Silent;
        }

        internal FakeGateway()
        {
            listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            acceptThread = new Thread(AcceptLoop) { IsBackground = true, Name = "fake gateway accept" };
            acceptThread.Start();
        }

        internal int Port { get { return ((IPEndPoint)listener.LocalEndpoint).Port; } }

        internal ConnectionParams Params(string service = "TEST")
        {
            return new ConnectionParams
            {
                GatewayHost = "127.0.0.1",
                GatewayPort = Port,
                Service = service,
                ClientName = "unit test",
                AckTimeoutMs = 5000,
                ReconnectDelayMs = 20,
                ReconnectMaxDelayMs = 200,
            };
        }

        private void AcceptLoop()
        {
            int index = 0;
            while (!stopped)
            {
                Socket socket;
                try
                {
                    socket = listener.AcceptSocket();
                }
                catch (Exception)
                {
                    return;
                }
                socket.NoDelay = true;
                var client = new Client { Index = index, Socket = socket, Silent = index < SilentConnections };
                index++;
                lock (sync)
                {
                    clients.Add(client);
                    Monitor.PulseAll(sync);
                }
                new Thread(() => ReadLoop(client)) { IsBackground = true, Name = "fake gateway client" }.Start();
            }
        }

        private void ReadLoop(Client client)
        {
            var reader = new FrameReader(client.Socket, 64 * 1024 * 1024);
            try
            {
                while (true)
                {
                    int offset;
                    int length;
                    while (reader.TryNext(out offset, out length))
                    {
                        var bytes = new byte[length];
                        Buffer.BlockCopy(reader.Buffer, offset, bytes, 0, length);
                        Handle(client, bytes);
                    }
                    Reading.WaitOne();
                    if (!reader.Fill()) break;
                }
            }
            catch (Exception)
            {
                // The client went away or the test killed the socket.
            }
            lock (sync)
            {
                clients.Remove(client);
                Monitor.PulseAll(sync);
            }
            try
            {
                client.Socket.Close();
            }
            catch (Exception)
            {
                // Already closed.
            }
        }

        private void Handle(Client client, byte[] bytes)
        {
            var header = FrameHeader.Parse(bytes, 0, bytes.Length);
            var frame = new ReceivedFrame { Connection = client.Index, Header = header, Bytes = bytes };
            bool record = RecordMessages || header.Action != WireAction.SendMessage;
            lock (sync)
            {
                if (header.Action == WireAction.SendMessage) MessagesReceived++;
                if (record) frames.Add(frame);
                Monitor.PulseAll(sync);
            }
            switch (header.Action)
            {
                case WireAction.Connect:
                    var options = frame.Body;
                    bool wants;
                    client.WantsNoResponders = options.TryGetBool("no_responders", out wants) && wants;
                    if (Ack == AckMode.Never) return;
                    if (Ack == AckMode.Refuse)
                    {
                        Send(client, Frames.Encode(0, header.Subject, "", WireAction.Error,
                            new Message().AddString("code", "SERVICE_REFUSED").AddString("text", "not here")));
                        client.Socket.Shutdown(SocketShutdown.Both);
                        return;
                    }
                    int version;
                    bool mm2 = Ack == AckMode.Mm2 && options.TryGetInt32("protocol_version", out version) && version >= 2;
                    Send(client, Frames.Encode(0, "", "", WireAction.Ack, mm2
                        ? new Message().AddInt32("protocol_version", 2).AddString("gateway_name", "fake")
                                       .AddUInt32("max_frame", 64 * 1024 * 1024).AddInt32("heartbeat_ms", HeartbeatMs)
                        : new Message()), true);
                    return;
                case WireAction.Subscribe:
                    lock (sync) client.Subscriptions.Add(new KeyValuePair<uint, string>(header.SubscriptionId, header.Subject));
                    return;
                case WireAction.Unsubscribe:
                    lock (sync) client.Subscriptions.RemoveAll(s => s.Key == header.SubscriptionId);
                    return;
                case WireAction.Ping:
                    if (!AnswerPings || client.Silent) return;
                    var pong = (byte[])bytes.Clone();
                    pong[4 + 4 + 4 + 4] = (byte)WireAction.Pong; // empty subjects: action at offset 16
                    Send(client, pong);
                    return;
                case WireAction.SendMessage:
                    if (Route) RouteMessage(client, header, bytes);
                    return;
            }
        }

        private void RouteMessage(Client sender, FrameHeader header, byte[] bytes)
        {
            var deliveries = new List<KeyValuePair<Client, uint>>();
            lock (sync)
            {
                foreach (var client in clients)
                {
                    foreach (var subscription in client.Subscriptions)
                    {
                        if (Subject.Matches(subscription.Value, header.Subject))
                        {
                            deliveries.Add(new KeyValuePair<Client, uint>(client, subscription.Key));
                        }
                    }
                }
            }
            foreach (var delivery in deliveries)
            {
                var copy = (byte[])bytes.Clone();
                Wire.WriteInt32(copy, 4, (int)delivery.Value);
                Send(delivery.Key, copy);
            }
            if (deliveries.Count == 0 && header.ReplySubject.Length > 0 && sender.WantsNoResponders)
            {
                uint inbox = 0;
                lock (sync)
                {
                    foreach (var subscription in sender.Subscriptions)
                    {
                        if (Subject.Matches(subscription.Value, header.ReplySubject)) inbox = subscription.Key;
                    }
                }
                Send(sender, Frames.Encode(inbox, header.ReplySubject, header.Subject, WireAction.NoResponders, null));
            }
        }

        private void Send(Client client, byte[] frame, bool evenIfSilent = false)
        {
            if (client.Silent && !evenIfSilent) return;
            lock (client.WriteLock)
            {
                try
                {
                    client.Socket.Send(frame);
                }
                catch (Exception)
                {
                    // The client is gone; its read loop cleans up.
                }
            }
        }

        /// <summary>Sends raw bytes to the connection with the given index (waits for it).</summary>
        internal void SendTo(int connection, byte[] frame)
        {
            Send(WaitForClient(connection), frame);
        }

        /// <summary>The subscription id the given connection uses for <paramref name="pattern"/>.</summary>
        internal uint SubscriptionId(int connection, string pattern)
        {
            var frame = WaitFor(f => f.Connection == connection && f.Header.Action == WireAction.Subscribe
                                     && f.Header.Subject == pattern);
            return frame.Header.SubscriptionId;
        }

        private Client WaitForClient(int index)
        {
            long deadline = Clock.NowMs + 10000;
            lock (sync)
            {
                while (true)
                {
                    foreach (var client in clients)
                    {
                        if (client.Index == index) return client;
                    }
                    int left = Clock.Remaining(deadline);
                    if (left == 0) Assert.Fail("connection #" + index + " never arrived at the fake gateway");
                    Monitor.Wait(sync, left);
                }
            }
        }

        /// <summary>The first recorded frame matching <paramref name="predicate"/>, waiting up to
        /// 10 s for it to arrive.</summary>
        internal ReceivedFrame WaitFor(Func<ReceivedFrame, bool> predicate, int timeoutMs = 10000)
        {
            long deadline = Clock.NowMs + timeoutMs;
            lock (sync)
            {
                while (true)
                {
                    foreach (var frame in frames)
                    {
                        if (predicate(frame)) return frame;
                    }
                    int left = Clock.Remaining(deadline);
                    if (left == 0)
                    {
                        Assert.Fail("the fake gateway did not receive the expected frame; it has:\n  "
                                    + string.Join("\n  ", frames.ConvertAll(f => f.ToString()).ToArray()));
                    }
                    Monitor.Wait(sync, left);
                }
            }
        }

        /// <summary>Recorded frames matching <paramref name="predicate"/>, in arrival order.</summary>
        internal List<ReceivedFrame> All(Func<ReceivedFrame, bool> predicate)
        {
            lock (sync) return frames.FindAll(f => predicate(f));
        }

        /// <summary>Waits until <paramref name="count"/> SEND_MESSAGE frames have arrived.</summary>
        internal void WaitForMessageCount(long count, int timeoutMs = 30000)
        {
            long deadline = Clock.NowMs + timeoutMs;
            lock (sync)
            {
                while (MessagesReceived < count)
                {
                    int left = Clock.Remaining(deadline);
                    if (left == 0) Assert.Fail("received " + MessagesReceived + " of " + count + " messages");
                    Monitor.Wait(sync, left);
                }
            }
        }

        /// <summary>Cuts every client connection, as a crashing gateway would.</summary>
        internal void KillConnections()
        {
            List<Client> victims;
            lock (sync) victims = new List<Client>(clients);
            foreach (var client in victims)
            {
                try
                {
                    client.Socket.Shutdown(SocketShutdown.Both);
                }
                catch (Exception)
                {
                    // Already gone.
                }
            }
        }

        public void Dispose()
        {
            stopped = true;
            Reading.Set();
            listener.Stop();
            KillConnections();
        }
    }

    /// <summary>Waiting helpers with deadlines; a test never sleeps for a fixed time to synchronise.</summary>
    internal static class Await
    {
        /// <summary>Waits for <paramref name="signal"/>, failing the test after <paramref name="timeoutMs"/>.</summary>
        internal static void Signal(WaitHandle signal, string what, int timeoutMs = 10000)
        {
            if (!signal.WaitOne(timeoutMs)) Assert.Fail("timed out waiting for " + what);
        }

        /// <summary>Polls <paramref name="condition"/> until it holds, failing after the timeout.</summary>
        internal static void Condition(Func<bool> condition, string what, int timeoutMs = 10000)
        {
            long deadline = Clock.NowMs + timeoutMs;
            while (!condition())
            {
                if (Clock.NowMs > deadline) Assert.Fail("timed out waiting for " + what);
                Thread.Sleep(2);
            }
        }
    }
}
