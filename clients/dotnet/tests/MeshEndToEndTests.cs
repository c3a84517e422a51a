using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Sockets;
using System.Threading;
using NUnit.Framework;

namespace MessagingMesh.Tests
{
    /// <summary>
    /// Two gateways meshed for one service: the mesh-wide flush makes a subscription on one
    /// gateway live for publishers on the other, and the first request of a connection confirms
    /// its inbox across the mesh before it goes out, so its reply cannot be lost.
    /// </summary>
    [TestFixture]
    public class MeshEndToEndTests
    {
        private const string Service = "MESHED";
        private readonly List<GatewayProcess> gateways = new List<GatewayProcess>();
        private readonly List<IDisposable> cleanup = new List<IDisposable>();
        private string configDirectory;

        [TestFixtureSetUp]
        public void StartMesh()
        {
            TestLog.Install();
            for (int attempt = 0; attempt < 5 && gateways.Count == 0; attempt++)
            {
                var ports = new[] { FreePort(), FreePort() };
                configDirectory = Path.Combine(Path.GetTempPath(), "mm-dotnet-mesh-" + Guid.NewGuid().ToString("N"));
                Directory.CreateDirectory(configDirectory);
                var config = Path.Combine(configDirectory, "gateway.json");
                File.WriteAllText(config,
                    "{ \"CoordinatorGateway\": \"\", \"StartupMeshes\": [ { \"Name\": \"" + Service
                    + "\", \"DiscoverMeshUsingCoordinator\": false, \"MeshGateways\": [\"127.0.0.1:" + ports[0]
                    + "\", \"127.0.0.1:" + ports[1] + "\"] } ] }");
                try
                {
                    for (int i = 0; i < ports.Length; i++)
                    {
                        gateways.Add(new GatewayProcess(ports[i], "--name", "gw" + (i + 1), "--config", config));
                    }
                }
                catch (GatewayStartException exception)
                {
                    // A port taken between choosing and binding it: try other ports.
                    if (!exception.Message.Contains("in use")) throw;
                    gateways.ForEach(g => g.Dispose());
                    gateways.Clear();
                }
            }
            Assert.AreEqual(2, gateways.Count, "could not start the mesh");
            WaitFullyLinked();
        }

        [TestFixtureTearDown]
        public void StopMesh()
        {
            foreach (var item in cleanup) item.Dispose();
            gateways.ForEach(g => g.Dispose());
            if (configDirectory != null) Directory.Delete(configDirectory, true);
        }

        private static int FreePort()
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            int port = ((IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            return port;
        }

        private Connection Connect(int gateway)
        {
            var connection = new Connection(gateways[gateway].Params(Service));
            cleanup.Add(connection);
            return connection;
        }

        /// <summary>
        /// Each gateway reports, in <c>_MM.STATS</c>, one dialled and one accepted link. Asked every
        /// 300 ms: a gateway answers a connection at most 4 times a second (then ERROR
        /// RATE_LIMITED, and the request would time out), and reuses an answer for 250 ms anyway.
        /// </summary>
        private void WaitFullyLinked()
        {
            var clients = new[] { Connect(0), Connect(1) };
            Await.Condition(() =>
            {
                bool linked = clients.All(client =>
                {
                    var stats = client.SendRequest("_MM.STATS", new Message(), 5000);
                    var links = stats.GetFields("link").Select(f => f.GetMessage()).ToList();
                    return links.Count(l => l.GetString("direction") == "dialled") == 1
                           && links.Count(l => l.GetString("direction") == "accepted") == 1;
                });
                // A connection gets at most 4 _MM.STATS answers a second (8 in a burst); asking
                // faster is refused with RATE_LIMITED, and the request would time out.
                if (!linked) Thread.Sleep(300);
                return linked;
            }, "the two gateways to link up", 30000);
        }

        [Test]
        public void AfterAMeshWideFlushAPublishOnTheOtherGatewayArrives()
        {
            for (int round = 0; round < 5; round++)
            {
                var subscriber = Connect(0);
                var publisher = Connect(1);
                var arrived = new ManualResetEvent(false);
                subscriber.Subscribe("MESH.R" + round + ".>", (c, s, r, m, t) => arrived.Set());
                subscriber.Flush(10000, meshWide: true);
                // Sent at once, with no retry: the flush alone guarantees the interest is there.
                publisher.SendMessage("MESH.R" + round + ".x", new Message().AddInt32("round", round));
                Await.Signal(arrived, "the message from the other gateway in round " + round);
            }
        }

        [Test]
        public void TheFirstRequestAcrossTheMeshGetsItsReply()
        {
            var responder = Connect(0);
            responder.Subscribe("Mesh.Add", (c, s, reply, request, tag) =>
                c.SendReply(reply, new Message().AddDouble("sum", request.GetDouble("A") + request.GetDouble("B"))));
            responder.Flush(10000, meshWide: true);
            for (int round = 0; round < 5; round++)
            {
                // A new connection each round: its first request is the one at risk.
                var requester = Connect(1);
                var reply = requester.SendRequest("Mesh.Add", new Message().AddDouble("A", round).AddDouble("B", 1), 10000);
                Assert.AreEqual(round + 1.0, reply.GetDouble("sum"));
            }
        }
    }
}
