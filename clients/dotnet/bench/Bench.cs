using System;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Threading;
using MessagingMesh;

/// <summary>
/// Small-message throughput of the .NET client.
///
///   mono Bench.exe publish   [--host H] [--port P] [--count N] [--size BYTES]
///   mono Bench.exe pubsub    [--host H] [--port P] [--count N] [--size BYTES]
///   mono Bench.exe sink-publish [--count N] [--size BYTES]
///
/// publish: one connection publishes N messages ({"#": int32}, plus a blob of BYTES when given)
/// to "BENCH.A" as fast as it can and flushes; the figure is N / (time until the flush returns).
/// pubsub: the same, with a second connection subscribed; the figure is N / (time until the
/// subscriber has received all N).
/// sink-publish: like publish, against an in-process sink that ACKs, answers PING and discards
/// frames, to measure the client alone when no gateway is at hand.
/// </summary>
public static class Bench
{
    public static int Main(string[] args)
    {
        if (args.Length == 0)
        {
            Console.Error.WriteLine("usage: Bench.exe publish|pubsub|sink-publish [--host H] [--port P] [--count N] [--size BYTES]");
            return 2;
        }
        string host = "127.0.0.1";
        int port = 5050;
        int count = 5000000;
        int size = 0;
        for (int i = 1; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--host": host = args[i + 1]; break;
                case "--port": port = int.Parse(args[i + 1]); break;
                case "--count": count = int.Parse(args[i + 1]); break;
                case "--size": size = int.Parse(args[i + 1]); break;
                default: Console.Error.WriteLine("unknown option " + args[i]); return 2;
            }
        }
        Sink sink = null;
        if (args[0] == "sink-publish")
        {
            sink = new Sink();
            port = sink.Port;
        }
        var parameters = new ConnectionParams { GatewayHost = host, GatewayPort = port, Service = "BENCH", ClientName = "bench" };
        switch (args[0])
        {
            case "publish":
            case "sink-publish":
                Publish(parameters, count, size, args[0]);
                break;
            case "pubsub":
                PubSub(parameters, count, size);
                break;
            default:
                Console.Error.WriteLine("unknown mode " + args[0]);
                return 2;
        }
        return 0;
    }

    private static Message Build(int i, byte[] payload)
    {
        var message = new Message().AddInt32("#", i);
        if (payload != null) message.AddBlob("b", payload);
        return message;
    }

    private static void Publish(ConnectionParams parameters, int count, int size, string mode)
    {
        byte[] payload = size > 0 ? new byte[size] : null;
        using (var connection = new Connection(parameters))
        {
            // Warm up the JIT and the buffers.
            for (int i = 0; i < 100000; i++) connection.SendMessage("BENCH.A", Build(i, payload));
            connection.Flush(60000);
            var before = connection.Statistics;
            var watch = Stopwatch.StartNew();
            for (int i = 0; i < count; i++) connection.SendMessage("BENCH.A", Build(i, payload));
            connection.Flush(120000);
            watch.Stop();
            var after = connection.Statistics;
            long frames = after.MessagesSent - before.MessagesSent;
            long writes = after.SocketWrites - before.SocketWrites;
            long bytes = after.BytesSent - before.BytesSent;
            Console.WriteLine("{0}: {1:N0} messages of {2} bytes in {3:N0} ms: {4:N0} msg/s, {5:N1} MB/s, {6:N0} frames per socket write",
                mode, count, bytes / Math.Max(frames, 1), watch.ElapsedMilliseconds,
                count / watch.Elapsed.TotalSeconds, bytes / watch.Elapsed.TotalSeconds / 1e6,
                (double)frames / Math.Max(writes, 1));
        }
    }

    private static void PubSub(ConnectionParams parameters, int count, int size)
    {
        byte[] payload = size > 0 ? new byte[size] : null;
        // The publisher outruns one subscriber on a small machine; a pending limit above the whole
        // run lets the figure be the delivery rate rather than a count of drops.
        var subscriberParams = new ConnectionParams
        {
            GatewayHost = parameters.GatewayHost, GatewayPort = parameters.GatewayPort, Service = parameters.Service,
            ClientName = "bench subscriber", PendingMessageLimit = count + 200000, PendingByteLimit = long.MaxValue,
        };
        using (var subscriber = new Connection(subscriberParams))
        using (var publisher = new Connection(parameters))
        {
            int received = 0;
            int target = count + 100000;
            var done = new ManualResetEvent(false);
            subscriber.Subscribe("BENCH.A", (c, s, r, m, t) =>
            {
                if (++received == target) done.Set();
            });
            subscriber.Flush(60000);
            for (int i = 0; i < 100000; i++) publisher.SendMessage("BENCH.A", Build(i, payload));
            while (Volatile.Read(ref received) < 100000) Thread.Sleep(10);
            var watch = Stopwatch.StartNew();
            for (int i = 0; i < count; i++) publisher.SendMessage("BENCH.A", Build(i, payload));
            if (!done.WaitOne(120000))
            {
                Console.WriteLine("pubsub: only {0:N0} of {1:N0} messages arrived (dropped {2:N0})",
                    received - 100000, count, subscriber.Statistics.MessagesDropped);
                return;
            }
            watch.Stop();
            Console.WriteLine("pubsub: {0:N0} messages in {1:N0} ms: {2:N0} msg/s delivered (dropped {3:N0})",
                count, watch.ElapsedMilliseconds, count / watch.Elapsed.TotalSeconds,
                subscriber.Statistics.MessagesDropped);
        }
    }

    /// <summary>A minimal MM/2 peer: ACKs CONNECT, answers PING, discards everything else.
    /// It only scans frame lengths and actions, so it costs the measurement little.</summary>
    private sealed class Sink
    {
        private readonly TcpListener listener = new TcpListener(IPAddress.Loopback, 0);

        internal Sink()
        {
            listener.Start();
            new Thread(Accept) { IsBackground = true }.Start();
        }

        internal int Port { get { return ((IPEndPoint)listener.LocalEndpoint).Port; } }

        private void Accept()
        {
            while (true)
            {
                var socket = listener.AcceptSocket();
                new Thread(() => Serve(socket)) { IsBackground = true }.Start();
            }
        }

        private static void Serve(Socket socket)
        {
            var buffer = new byte[1 << 20];
            int start = 0;
            int end = 0;
            try
            {
                while (true)
                {
                    int read = socket.Receive(buffer, end, buffer.Length - end, SocketFlags.None);
                    if (read == 0) return;
                    end += read;
                    while (end - start >= 4)
                    {
                        int length = BitConverter.ToInt32(buffer, start);
                        if (end - start < length) break;
                        int subjectLength = BitConverter.ToInt32(buffer, start + 8);
                        int replyLength = BitConverter.ToInt32(buffer, start + 12 + subjectLength);
                        byte action = buffer[start + 16 + subjectLength + replyLength];
                        if (action == 1)
                        {
                            // ACK with an MM/2 body: protocol_version=2.
                            var ack = new byte[] { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3,
                                1, 0, 0, 0, 16, 0, 0, 0 }
                                .Concat("protocol_version").Concat(new byte[] { 2, 2, 0, 0, 0 });
                            BitConverter.GetBytes(ack.Length).CopyTo(ack, 0);
                            socket.Send(ack);
                        }
                        else if (action == 8)
                        {
                            var pong = new byte[length];
                            Buffer.BlockCopy(buffer, start, pong, 0, length);
                            pong[16] = 9;
                            socket.Send(pong);
                        }
                        start += length;
                    }
                    if (start == end)
                    {
                        start = end = 0;
                    }
                    else if (buffer.Length - end < 65536)
                    {
                        Buffer.BlockCopy(buffer, start, buffer, 0, end - start);
                        end -= start;
                        start = 0;
                    }
                }
            }
            catch (SocketException)
            {
                // The client went away.
            }
        }
    }

    private static byte[] Concat(this byte[] head, string text)
    {
        return Concat(head, System.Text.Encoding.ASCII.GetBytes(text));
    }

    private static byte[] Concat(this byte[] head, byte[] tail)
    {
        var all = new byte[head.Length + tail.Length];
        Buffer.BlockCopy(head, 0, all, 0, head.Length);
        Buffer.BlockCopy(tail, 0, all, head.Length, tail.Length);
        return all;
    }
}
