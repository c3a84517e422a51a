using System;
using NUnit.Framework;

namespace MessagingMesh.Tests
{
    /// <summary>
    /// Every file in testdata/vectors decodes to the values listed in SPEC §10 and encodes back to
    /// the identical bytes.
    /// </summary>
    [TestFixture]
    public class VectorTests
    {
        private const string Inbox = "_INBOX.k3Jx9aQ0pLm2Zr8sT4uVw6.1";

        /// <summary>The 12 fields of reference-message.bin, built with the public API.</summary>
        internal static Message ReferenceFields()
        {
            return new Message()
                .AddString("s", "hello, world!")
                .AddInt32("i32_1", 123456)
                .AddInt32("i32_2", -123456)
                .AddUInt32("ui32", 3123456789)
                .AddInt64("i64_1", 4123456789123456789)
                .AddInt64("i64_2", -4123456789123456789)
                .AddUInt64("ui64", 11123456789123456789)
                .AddDouble("d", 123.456)
                .AddBool("b1", true)
                .AddBool("b2", false)
                .AddBlob("blob", new byte[] { 0x01, 0x02, 0x03, 0xe6, 0xf0, 0xfa })
                .AddMessage("sm", new Message().AddString("s", "hello, world!").AddDouble("d", 123.456));
        }

        internal static void AssertReferenceFields(Message message)
        {
            Assert.AreEqual(12, message.Count);
            string[] names = { "s", "i32_1", "i32_2", "ui32", "i64_1", "i64_2", "ui64", "d", "b1", "b2", "blob", "sm" };
            FieldType[] types =
            {
                FieldType.String, FieldType.Int32, FieldType.Int32, FieldType.UInt32, FieldType.Int64,
                FieldType.Int64, FieldType.UInt64, FieldType.Double, FieldType.Bool, FieldType.Bool,
                FieldType.Blob, FieldType.Message,
            };
            for (int i = 0; i < names.Length; i++)
            {
                Assert.AreEqual(names[i], message[i].Name, "name of field " + i);
                Assert.AreEqual(types[i], message[i].Type, "type of field " + names[i]);
            }
            Assert.AreEqual("hello, world!", message.GetString("s"));
            Assert.AreEqual(123456, message.GetInt32("i32_1"));
            Assert.AreEqual(-123456, message.GetInt32("i32_2"));
            Assert.AreEqual(3123456789u, message.GetUInt32("ui32"));
            Assert.AreEqual(4123456789123456789L, message.GetInt64("i64_1"));
            Assert.AreEqual(-4123456789123456789L, message.GetInt64("i64_2"));
            Assert.AreEqual(11123456789123456789UL, message.GetUInt64("ui64"));
            Assert.AreEqual(123.456, message.GetDouble("d"));
            Assert.IsTrue(message.GetBool("b1"));
            Assert.IsFalse(message.GetBool("b2"));
            CollectionAssert.AreEqual(new byte[] { 0x01, 0x02, 0x03, 0xe6, 0xf0, 0xfa }, message.GetBlob("blob"));
            var nested = message.GetMessage("sm");
            Assert.AreEqual(2, nested.Count);
            Assert.AreEqual("hello, world!", nested.GetString("s"));
            Assert.AreEqual(123.456, nested.GetDouble("d"));
        }

        [Test]
        public void ReferenceMessageDecodesToTheListedValuesAndReencodesByteExact()
        {
            var bytes = TestData.Vector("reference-message.bin");
            Assert.AreEqual(222, bytes.Length);
            Assert.AreEqual(222, Wire.ReadInt32(bytes, 0), "length prefix counts itself");
            var message = Message.Decode(bytes, 4, bytes.Length - 4);
            AssertReferenceFields(message);

            var body = message.Encode();
            var framed = new byte[body.Length + 4];
            Wire.WriteInt32(framed, 0, framed.Length);
            Buffer.BlockCopy(body, 0, framed, 4, body.Length);
            Frames.AssertBytes(bytes, framed, "re-encoded decoded message");
        }

        [Test]
        public void ReferenceMessageBuiltFromScratchEncodesToTheSameBytes()
        {
            var bytes = TestData.Vector("reference-message.bin");
            var body = ReferenceFields().Encode();
            var expected = new byte[bytes.Length - 4];
            Buffer.BlockCopy(bytes, 4, expected, 0, expected.Length);
            Frames.AssertBytes(expected, body, "message built with the API");
        }

        [Test]
        public void AllTypesFrame()
        {
            var bytes = TestData.Vector("all-types-frame.bin");
            var frame = Frames.Decode(bytes);
            Assert.AreEqual(WireAction.SendMessage, frame.Header.Action);
            Assert.AreEqual("TEST.ALL", frame.Header.Subject);
            Assert.AreEqual("", frame.Header.ReplySubject);
            Assert.AreEqual(0u, frame.Header.SubscriptionId);
            AssertReferenceFields(frame.Body);
            Frames.AssertBytes(bytes, Frames.Reencode(frame), "re-encoded");
            Frames.AssertBytes(bytes, Frames.Encode(0, "TEST.ALL", "", WireAction.SendMessage, ReferenceFields()),
                               "built from scratch");
        }

        /// <summary>Header expectations for the frames whose bodies are checked field by field below.</summary>
        [TestCase("connect-legacy.bin", (int)WireAction.Connect, 0u, "VULCAN", "X", 0)]
        [TestCase("connect-v2.bin", (int)WireAction.Connect, 0u, "VULCAN", "orders-service", 4)]
        [TestCase("ack-legacy.bin", (int)WireAction.Ack, 0u, "", "", 0)]
        [TestCase("ack-v2.bin", (int)WireAction.Ack, 0u, "", "", 4)]
        [TestCase("subscribe.bin", (int)WireAction.Subscribe, 1u, "A.B", "", 0)]
        [TestCase("subscribe-wildcard.bin", (int)WireAction.Subscribe, 7u, "PRICES.*.>", "", 0)]
        [TestCase("unsubscribe-by-id.bin", (int)WireAction.Unsubscribe, 1u, "", "", 0)]
        [TestCase("disconnect.bin", (int)WireAction.Disconnect, 0u, "", "", 0)]
        [TestCase("send-message.bin", (int)WireAction.SendMessage, 0u, "A.B", "", 1)]
        [TestCase("send-message-delivered-sub5.bin", (int)WireAction.SendMessage, 5u, "A.B", "", 1)]
        [TestCase("request-with-reply-subject.bin", (int)WireAction.SendMessage, 0u, "Service.Add", Inbox, 2)]
        [TestCase("ping.bin", (int)WireAction.Ping, 0u, "", "", 1)]
        [TestCase("pong.bin", (int)WireAction.Pong, 0u, "", "", 1)]
        [TestCase("ping-mesh-flush.bin", (int)WireAction.Ping, 0u, "", "", 1)]
        [TestCase("error-invalid-subject.bin", (int)WireAction.Error, 3u, "bad..subject", "", 2)]
        [TestCase("no-responders.bin", (int)WireAction.NoResponders, 1u, Inbox, "Service.Add", 0)]
        [TestCase("connect-mesh-peer.bin", (int)WireAction.ConnectMeshPeer, 0u, "VULCAN", "G", 0)]
        [TestCase("connect-mesh-peer-v2.bin", (int)WireAction.ConnectMeshPeer, 0u, "VULCAN", "host-a:5050", 4)]
        [TestCase("ack-mesh-v2.bin", (int)WireAction.Ack, 0u, "", "", 5)]
        [TestCase("nest-64.bin", (int)WireAction.SendMessage, 0u, "NEST.x", "", 1)]
        public void FrameHeaderDecodesAndFrameReencodesByteExact(string file, int action, uint subscriptionId,
                                                                  string subject, string replySubject, int fieldCount)
        {
            var bytes = TestData.Vector(file);
            var frame = Frames.Decode(bytes);
            Assert.AreEqual((WireAction)action, frame.Header.Action);
            Assert.AreEqual(subscriptionId, frame.Header.SubscriptionId);
            Assert.AreEqual(subject, frame.Header.Subject);
            Assert.AreEqual(replySubject, frame.Header.ReplySubject);
            Assert.AreEqual(fieldCount, frame.Body.Count);
            Frames.AssertBytes(bytes, Frames.Reencode(frame), file + " re-encoded");
        }

        [Test]
        public void ConnectV2Body()
        {
            var body = Frames.Decode(TestData.Vector("connect-v2.bin")).Body;
            Assert.AreEqual(2, body.GetInt32("protocol_version"));
            Assert.AreEqual("example 1.0", body.GetString("client_name"));
            Assert.AreEqual(5000, body.GetInt32("heartbeat_ms"));
            Assert.IsTrue(body.GetBool("no_responders"));
            var rebuilt = Frames.Encode(0, "VULCAN", "orders-service", WireAction.Connect,
                new Message().AddInt32("protocol_version", 2).AddString("client_name", "example 1.0")
                             .AddInt32("heartbeat_ms", 5000).AddBool("no_responders", true));
            Frames.AssertBytes(TestData.Vector("connect-v2.bin"), rebuilt, "built from scratch");
        }

        [Test]
        public void AckV2Body()
        {
            var body = Frames.Decode(TestData.Vector("ack-v2.bin")).Body;
            Assert.AreEqual(2, body.GetInt32("protocol_version"));
            Assert.AreEqual("gw-a", body.GetString("gateway_name"));
            Assert.AreEqual(67108864u, body.GetUInt32("max_frame"));
            Assert.AreEqual(5000, body.GetInt32("heartbeat_ms"));
        }

        [Test]
        public void SendMessageBodies()
        {
            Assert.AreEqual(7, Frames.Decode(TestData.Vector("send-message.bin")).Body.GetInt32("#"));
            Assert.AreEqual(7, Frames.Decode(TestData.Vector("send-message-delivered-sub5.bin")).Body.GetInt32("#"));
            var published = TestData.Vector("send-message.bin");
            var delivered = TestData.Vector("send-message-delivered-sub5.bin");
            Assert.AreEqual(published.Length, delivered.Length);
            for (int i = 0; i < published.Length; i++)
            {
                if (i >= 4 && i < 8) continue;
                Assert.AreEqual(published[i], delivered[i], "only bytes 4..7 differ; byte " + i);
            }
            Frames.AssertBytes(published,
                               Frames.Encode(0, "A.B", null, WireAction.SendMessage, new Message().AddInt32("#", 7)),
                               "send-message built from scratch");
        }

        [Test]
        public void RequestBody()
        {
            var body = Frames.Decode(TestData.Vector("request-with-reply-subject.bin")).Body;
            Assert.AreEqual(0.5, body.GetDouble("A"));
            Assert.AreEqual(1.5, body.GetDouble("B"));
        }

        [Test]
        public void PingPongBodies()
        {
            Assert.AreEqual(42, Frames.Decode(TestData.Vector("ping.bin")).Body.GetInt32("k"));
            Assert.AreEqual(42, Frames.Decode(TestData.Vector("pong.bin")).Body.GetInt32("k"));
            Assert.IsTrue(Frames.Decode(TestData.Vector("ping-mesh-flush.bin")).Body.GetBool("mesh"));
            Frames.AssertBytes(TestData.Vector("ping-mesh-flush.bin"),
                               Frames.Encode(0, null, null, WireAction.Ping, new Message().AddBool("mesh", true)),
                               "mesh flush PING built from scratch");
        }

        [Test]
        public void ErrorBody()
        {
            var body = Frames.Decode(TestData.Vector("error-invalid-subject.bin")).Body;
            Assert.AreEqual("INVALID_SUBJECT", body.GetString("code"));
            Assert.AreEqual("empty token at position 2", body.GetString("text"));
        }

        [Test]
        public void MeshPeerBodies()
        {
            var connect = Frames.Decode(TestData.Vector("connect-mesh-peer-v2.bin")).Body;
            Assert.AreEqual(2, connect.GetInt32("protocol_version"));
            Assert.AreEqual("host-a:5050", connect.GetString("gateway_name"));
            Assert.AreEqual("5f0c3a9e1b7d4c2a8e6f0b1d3c5a7e9f", connect.GetString("gateway_id"));
            Assert.AreEqual(5000, connect.GetInt32("heartbeat_ms"));
            var ack = Frames.Decode(TestData.Vector("ack-mesh-v2.bin")).Body;
            Assert.AreEqual(2, ack.GetInt32("protocol_version"));
            Assert.AreEqual("host-b:5050", ack.GetString("gateway_name"));
            Assert.AreEqual("a1b2c3d4e5f60718293a4b5c6d7e8f90", ack.GetString("gateway_id"));
            Assert.AreEqual(5000, ack.GetInt32("heartbeat_ms"));
            Assert.AreEqual(67108864u, ack.GetUInt32("max_frame"));
        }

        [Test]
        public void Nest64DecodesToDepth64()
        {
            var message = Frames.Decode(TestData.Vector("nest-64.bin")).Body;
            int depth = 1;
            while (message.Count > 0)
            {
                message = message.GetMessage("n");
                depth++;
            }
            Assert.AreEqual(64, depth);
        }

        [Test]
        public void Nest65IsADecodeErrorButItsHeaderParses()
        {
            var bytes = TestData.Vector("nest-65.bin");
            var header = FrameHeader.Parse(bytes, 0, bytes.Length);
            Assert.AreEqual("NEST.x", header.Subject);
            var error = Assert.Throws<DecodeException>(() => header.DecodeBody(bytes, 0, bytes.Length));
            StringAssert.Contains("deeper than 64", error.Message);
        }

        [Test]
        public void EncodingDepth65IsRefusedAndDepth64Accepted()
        {
            var bytes = TestData.Vector("nest-64.bin");
            var nest64 = Frames.Decode(bytes).Body;
            Frames.AssertBytes(bytes, Frames.Encode(0, "NEST.x", null, WireAction.SendMessage, nest64), "nest-64");
            var nest65 = new Message().AddMessage("n", nest64);
            Assert.Throws<EncodeException>(() => nest65.Encode());
        }

        [Test]
        public void EveryVectorIsCovered()
        {
            var files = System.IO.Directory.GetFiles(System.IO.Path.Combine(TestData.Root, "vectors"), "*.bin");
            Assert.AreEqual(23, files.Length, "SPEC §10 lists 23 vectors");
        }
    }
}
