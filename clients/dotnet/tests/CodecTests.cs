using System;
using NUnit.Framework;

namespace MessagingMesh.Tests
{
    /// <summary>Every decoder is bounded: bad input is a DecodeException, never another exception
    /// and never an allocation sized by the input.</summary>
    [TestFixture]
    public class CodecTests
    {
        private static byte[] Body(params byte[] bytes)
        {
            return bytes;
        }

        [TestCase(new byte[] { 0xff, 0xff, 0xff, 0xff }, "negative field count", TestName = "negative field count")]
        [TestCase(new byte[] { 0xff, 0xff, 0xff, 0x7f }, "runs past the end", TestName = "field count of 2^31-1 with no fields")]
        [TestCase(new byte[] { 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff }, "negative field name length", TestName = "negative name length")]
        [TestCase(new byte[] { 1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f }, "runs past the end", TestName = "oversized name length")]
        [TestCase(new byte[] { 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xfe, 0xff, 0xff, 0xff }, "negative string length", TestName = "negative string length")]
        [TestCase(new byte[] { 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x00, 0x00, 0x00, 0x40 }, "runs past the end", TestName = "1 GiB string length")]
        [TestCase(new byte[] { 1, 0, 0, 0, 0, 0, 0, 0, 9, 0x00, 0x00, 0x00, 0x80 }, "negative blob length", TestName = "negative blob length")]
        [TestCase(new byte[] { 1, 0, 0, 0, 0, 0, 0, 0, 0 }, "invalid field type 0", TestName = "NOT_SET type")]
        [TestCase(new byte[] { 1, 0, 0, 0, 0, 0, 0, 0, 10 }, "invalid field type 10", TestName = "type 10")]
        [TestCase(new byte[] { 1, 0, 0, 0, 0, 0, 0, 0, 255 }, "invalid field type 255", TestName = "type 255")]
        [TestCase(new byte[] { 1, 0, 0, 0, 0, 0, 0, 0, 4, 1, 2, 3 }, "int64 value runs past the end", TestName = "truncated int64")]
        [TestCase(new byte[] { 1, 0, 0, 0, 0, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff }, "negative field count", TestName = "nested negative count")]
        public void MalformedBodiesAreDecodeErrors(byte[] body, string expected)
        {
            var error = Assert.Throws<DecodeException>(() => Message.Decode(body));
            StringAssert.Contains(expected, error.Message);
        }

        [Test]
        public void EveryTruncationOfAValidFrameIsADecodeError()
        {
            var frame = TestData.Vector("all-types-frame.bin");
            var header = FrameHeader.Parse(frame, 0, frame.Length);
            for (int length = 4; length < frame.Length; length++)
            {
                try
                {
                    var cut = FrameHeader.Parse(frame, 0, length);
                    cut.DecodeBody(frame, 0, length);
                    Assert.Fail("decoding the first " + length + " bytes succeeded");
                }
                catch (DecodeException)
                {
                    // expected
                }
            }
            Assert.AreEqual(12, header.DecodeBody(frame, 0, frame.Length).Count);
        }

        [Test]
        public void RandomCorruptionOnlyEverProducesDecodeErrors()
        {
            var original = TestData.Vector("all-types-frame.bin");
            var random = new Random(20240611);
            int decoded = 0;
            int rejected = 0;
            for (int round = 0; round < 20000; round++)
            {
                var frame = (byte[])original.Clone();
                int flips = 1 + random.Next(4);
                for (int i = 0; i < flips; i++)
                {
                    frame[4 + random.Next(frame.Length - 4)] = (byte)random.Next(256);
                }
                try
                {
                    var header = FrameHeader.Parse(frame, 0, frame.Length);
                    header.DecodeBody(frame, 0, frame.Length);
                    decoded++;
                }
                catch (DecodeException)
                {
                    rejected++;
                }
            }
            Assert.Greater(rejected, 0);
            Assert.Greater(decoded, 0);
        }

        [Test]
        public void HugeDeclaredCountsDoNotAllocate()
        {
            // 2^31-1 fields declared, 10 bytes present: rejected without reserving room for them.
            var body = new byte[] { 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 8, 1 };
            long before = GC.GetTotalMemory(true);
            Assert.Throws<DecodeException>(() => Message.Decode(body));
            long after = GC.GetTotalMemory(false);
            Assert.Less(after - before, 1024 * 1024, "bytes allocated while rejecting");
        }

        [Test]
        public void DepthLimitHoldsForHandBuiltNesting()
        {
            Assert.DoesNotThrow(() => Message.Decode(Nest(64)));
            var error = Assert.Throws<DecodeException>(() => Message.Decode(Nest(65)));
            StringAssert.Contains("nested deeper than 64", error.Message);
            Assert.Throws<DecodeException>(() => Message.Decode(Nest(100000)));
        }

        /// <summary>A Message whose innermost Message is at <paramref name="depth"/>.</summary>
        private static byte[] Nest(int depth)
        {
            var writer = new WireWriter(depth * 10 + 8);
            for (int level = 1; level < depth; level++)
            {
                writer.WriteInt32(1);
                writer.WriteString("n");
                writer.WriteByte((byte)FieldType.Message);
            }
            writer.WriteInt32(0);
            return writer.ToArray();
        }

        [Test]
        public void FrameReaderRejectsLengthsOutOfRangeBeforeAllocating()
        {
            foreach (var declared in new[] { 0, 20, -1, int.MinValue, 64 * 1024 * 1024 + 1, int.MaxValue })
            {
                var bytes = new byte[64];
                Wire.WriteInt32(bytes, 0, declared);
                using (var pair = new SocketPair())
                {
                    pair.Left.Send(bytes);
                    var reader = new FrameReader(pair.Right, 64 * 1024 * 1024);
                    Assert.IsTrue(reader.Fill());
                    int offset;
                    int length;
                    var error = Assert.Throws<MessagingMeshException>(() => reader.TryNext(out offset, out length),
                                                                     "length " + declared);
                    StringAssert.Contains("frame length " + declared, error.Message);
                }
            }
        }

        [Test]
        public void FrameReaderReassemblesFramesSplitAtEveryByte()
        {
            var one = TestData.Vector("all-types-frame.bin");
            var two = TestData.Vector("send-message.bin");
            var stream = new byte[one.Length + two.Length];
            Buffer.BlockCopy(one, 0, stream, 0, one.Length);
            Buffer.BlockCopy(two, 0, stream, one.Length, two.Length);
            for (int split = 1; split < stream.Length; split++)
            {
                using (var pair = new SocketPair())
                {
                    var reader = new FrameReader(pair.Right, 1024);
                    pair.Left.Send(stream, 0, split, System.Net.Sockets.SocketFlags.None);
                    var lengths = new System.Collections.Generic.List<int>();
                    int offset;
                    int length;
                    Assert.IsTrue(reader.Fill());
                    while (reader.TryNext(out offset, out length)) lengths.Add(length);
                    pair.Left.Send(stream, split, stream.Length - split, System.Net.Sockets.SocketFlags.None);
                    while (lengths.Count < 2)
                    {
                        Assert.IsTrue(reader.Fill());
                        while (reader.TryNext(out offset, out length))
                        {
                            lengths.Add(length);
                            if (length == two.Length)
                            {
                                var frame = new byte[length];
                                Buffer.BlockCopy(reader.Buffer, offset, frame, 0, length);
                                CollectionAssert.AreEqual(two, frame, "split at " + split);
                            }
                        }
                    }
                    CollectionAssert.AreEqual(new[] { one.Length, two.Length }, lengths, "split at " + split);
                }
            }
        }
    }
}
