using System.Linq;
using System.Threading;
using NUnit.Framework;

namespace MessagingMesh.Tests
{
    /// <summary>The example programs, run as separate processes against a real gateway.</summary>
    [TestFixture]
    public class ExampleTests
    {
        private static int services;
        private GatewayProcess gateway;
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
            service = "EXAMPLES" + Interlocked.Increment(ref services);
        }

        private string[] Common(params string[] rest)
        {
            return new[] { "--gateway", "127.0.0.1:" + gateway.Port, "--service", service }.Concat(rest).ToArray();
        }

        /// <summary>Every example, as its source file names it (so a new one is covered too).</summary>
        private static string[] ExampleNames()
        {
            var examples = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(TestData.Root), "clients", "dotnet", "examples");
            var names = System.IO.Directory.GetFiles(examples, "*.cs")
                .Select(System.IO.Path.GetFileNameWithoutExtension).OrderBy(name => name).ToArray();
            Assert.That(names, Has.Length.GreaterThanOrEqualTo(5), examples);
            return names;
        }

        [Test]
        public void EveryExampleExplainsItselfWithHelpAndRefusesUnknownOptions()
        {
            foreach (var name in ExampleNames())
            {
                foreach (var help in new[] { "--help", "-h" })
                {
                    // No gateway is involved: --help must not connect (or subscribe to "--help").
                    using (var example = ChildProcess.Example(name, "--gateway", "127.0.0.1:1", help))
                    {
                        Assert.AreEqual(0, example.WaitForExit(), example.Output);
                        StringAssert.StartsWith("usage: mono " + name + ".exe [--gateway HOST[:PORT]] [--service NAME]",
                                                example.Stdout[0], example.Output);
                        CollectionAssert.IsEmpty(example.Stderr, example.Output);
                    }
                }
                using (var example = ChildProcess.Example(name, "--no-such-option"))
                {
                    Assert.AreEqual(2, example.WaitForExit(), example.Output);
                    Assert.AreEqual("unknown option --no-such-option", example.Stderr[0], example.Output);
                }
            }
        }

        [Test]
        public void ABadGatewayAddressIsAUsageError()
        {
            using (var publisher = ChildProcess.Example("Publisher", "--gateway", "localhost:http"))
            {
                Assert.AreEqual(2, publisher.WaitForExit(), publisher.Output);
                Assert.AreEqual("--gateway localhost:http: the port must be a number from 1 to 65535", publisher.Stderr[0]);
            }
        }

        [Test]
        public void ListenPrintsWhatPublisherSends()
        {
            using (var listen = ChildProcess.Example("Listen", Common("--count", "3", "PRICES.>")))
            {
                listen.WaitForLine("listening on PRICES.>", onStderr: true);
                using (var publisher = ChildProcess.Example("Publisher", Common("PRICES.IBM", "3")))
                {
                    Assert.AreEqual(0, publisher.WaitForExit(), publisher.Output);
                    StringAssert.Contains("published 3 messages to PRICES.IBM", publisher.Stdout[0]);
                }
                Assert.AreEqual(0, listen.WaitForExit(), listen.Output);
                var lines = listen.Stdout;
                Assert.AreEqual(3, lines.Length, listen.Output);
                StringAssert.StartsWith("PRICES.IBM {seq=1 price=100.25 currency=\"USD\" time=", lines[0]);
                StringAssert.StartsWith("PRICES.IBM {seq=3 price=100.75", lines[2]);
            }
        }

        [Test]
        public void SubscriberDrainsItsQueue()
        {
            using (var subscriber = ChildProcess.Example("Subscriber", Common("PRICES.>", "2")))
            {
                subscriber.WaitForLine("listening on PRICES.>");
                using (var publisher = ChildProcess.Example("Publisher", Common("PRICES.MSFT", "2")))
                {
                    Assert.AreEqual(0, publisher.WaitForExit(), publisher.Output);
                }
                Assert.AreEqual(0, subscriber.WaitForExit(), subscriber.Output);
                CollectionAssert.AreEqual(
                    new[] { "listening on PRICES.>", "PRICES.MSFT: price 100.25", "PRICES.MSFT: price 100.5" },
                    subscriber.Stdout);
            }
        }

        [Test]
        public void RequesterGetsTheRespondersAnswer()
        {
            using (var responder = ChildProcess.Example("Responder", Common()))
            {
                responder.WaitForLine("answering requests on Service.Add");
                using (var requester = ChildProcess.Example("Requester", Common("Service.Add", "1.5", "2.25")))
                {
                    Assert.AreEqual(0, requester.WaitForExit(), requester.Output);
                    CollectionAssert.AreEqual(new[] { "1.5 + 2.25 = 3.75" }, requester.Stdout);
                }
                responder.WriteLine("");
                Assert.AreEqual(0, responder.WaitForExit(), responder.Output);
            }
        }

        [Test]
        public void RequesterReportsNoResponders()
        {
            using (var requester = ChildProcess.Example("Requester", Common("Nobody.Home")))
            {
                Assert.AreEqual(1, requester.WaitForExit(), requester.Output);
                StringAssert.Contains("nobody answers requests on Nobody.Home", requester.Stderr[0]);
            }
        }
    }
}
