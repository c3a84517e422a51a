using System;
using System.Diagnostics;
using System.IO;
using System.Threading;
using NUnit.Framework;

namespace MessagingMesh.Tests
{
    /// <summary>
    /// The client against a gateway with security on (docs/security.md): TLS with a CA the test
    /// makes (openssl), a password, and private replies used without the application knowing.
    /// </summary>
    [TestFixture]
    public class SecurityTests
    {
        private const string Service = "SECURE";
        private string directory;
        private GatewayProcess gateway;

        private static string Run(string program, string arguments, string input = null)
        {
            var start = new ProcessStartInfo(program, arguments)
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = input != null,
            };
            using (var process = Process.Start(start))
            {
                if (input != null)
                {
                    process.StandardInput.Write(input);
                    process.StandardInput.Close();
                }
                string output = process.StandardOutput.ReadToEnd();
                string errors = process.StandardError.ReadToEnd();
                process.WaitForExit();
                if (process.ExitCode != 0)
                {
                    Assert.Fail(program + " " + arguments + " failed: " + errors);
                }
                return output;
            }
        }

        private string InDirectory(string name)
        {
            return Path.Combine(directory, name);
        }

        [TestFixtureSetUp]
        public void StartGateway()
        {
            directory = Path.Combine(Path.GetTempPath(), "mm-cs-security-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(directory);
            Run("openssl", "req -x509 -newkey rsa:2048 -nodes -days 2"
                + " -subj /CN=test-ca -keyout " + InDirectory("ca.key") + " -out " + InDirectory("ca.pem"));
            Run("openssl", "req -newkey rsa:2048 -nodes -subj /CN=localhost"
                + " -keyout " + InDirectory("server.key") + " -out " + InDirectory("server.csr"));
            File.WriteAllText(InDirectory("server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
            Run("openssl", "x509 -req -days 2 -in " + InDirectory("server.csr") + " -CA " + InDirectory("ca.pem")
                + " -CAkey " + InDirectory("ca.key") + " -CAcreateserial -extfile " + InDirectory("server.ext")
                + " -out " + InDirectory("server.pem"));
            string hash = Run(GatewayProcess.BinaryPath, "passwd", "csharp-password\n").Trim();
            string config = "{\"Tls\": {\"CertFile\": \"" + InDirectory("server.pem") + "\", \"KeyFile\": \""
                            + InDirectory("server.key") + "\"},"
                            + "\"ServiceSecurity\": {\"" + Service + "\": {\"Users\": [{\"Name\": \"app\","
                            + " \"PasswordHash\": \"" + hash + "\","
                            + " \"Publish\": {\"Allow\": [\"Service.>\", \"Events.>\"]},"
                            + " \"Subscribe\": {\"Allow\": [\"Service.>\", \"Events.>\"]}}]}}}";
            File.WriteAllText(InDirectory("gateway.json"), config);
            gateway = new GatewayProcess(0, "--config", InDirectory("gateway.json"));
        }

        [TestFixtureTearDown]
        public void StopGateway()
        {
            if (gateway != null) gateway.Dispose();
            try
            {
                Directory.Delete(directory, true);
            }
            catch (IOException)
            {
                // Best effort.
            }
        }

        [SetUp]
        public void Log()
        {
            TestLog.Install();
        }

        private ConnectionParams Secure(string password = "csharp-password")
        {
            var parameters = gateway.Params(Service);
            parameters.Tls = true;
            parameters.TlsCaFile = InDirectory("ca.pem");
            parameters.TlsServerName = "localhost";
            parameters.User = "app";
            parameters.Password = password;
            parameters.Reconnect = false;
            return parameters;
        }

        [Test]
        public void TlsPasswordAndPrivateReplies()
        {
            using (var responder = new Connection(Secure()))
            using (var requester = new Connection(Secure()))
            {
                StringAssert.StartsWith("_INBOX.", requester.InboxPrefix);
                responder.Subscribe("Service.Echo", (connection, subject, replySubject, message, tag) =>
                {
                    connection.SendReply(replySubject, message);
                });
                responder.Flush();
                for (int i = 0; i < 10; i++)
                {
                    var reply = requester.SendRequest("Service.Echo", new Message().AddInt32("#", i), 10000);
                    Assert.AreEqual(i, reply.GetInt32("#"));
                }
                var received = new ManualResetEvent(false);
                int length = 0;
                requester.Subscribe("Events.>", (connection, subject, replySubject, message, tag) =>
                {
                    length = message.GetBlob("blob").Length;
                    received.Set();
                });
                requester.Flush();
                responder.SendMessage("Events.Big", new Message().AddBlob("blob", new byte[300000]));
                Assert.IsTrue(received.WaitOne(10000), "the large message arrived over TLS");
                Assert.AreEqual(300000, length);
            }
        }

        [Test]
        public void WrongPasswordIsRefused()
        {
            var error = Assert.Throws<ConnectionClosedException>(() => new Connection(Secure("wrong")));
            StringAssert.Contains("AUTHENTICATION_FAILED", error.Message);
        }

        [Test]
        public void PlaintextToTheTlsPortFailsFastWithTheReason()
        {
            var parameters = Secure();
            parameters.Tls = false;
            var watch = Stopwatch.StartNew();
            var error = Assert.Throws<ConnectionClosedException>(() => new Connection(parameters));
            StringAssert.Contains("TLS_REQUIRED", error.Message);
            Assert.Less(watch.ElapsedMilliseconds, 5000);
        }

        [Test]
        public void AnUntrustedGatewayCertificateFailsTheHandshake()
        {
            var parameters = Secure();
            parameters.TlsCaFile = null;
            var error = Assert.Throws<ConnectionClosedException>(() => new Connection(parameters));
            StringAssert.Contains("TLS handshake", error.Message);
        }
    }
}
