using System;
using System.Linq;
using NUnit.Framework;

namespace MessagingMesh.Tests
{
    [TestFixture]
    public class MessageTests
    {
        [Test]
        public void FieldsKeepInsertionOrderAndDuplicatesAreAllowed()
        {
            var message = new Message().AddInt32("x", 1).AddString("y", "a").AddInt32("x", 2).AddString("", "empty name");
            Assert.AreEqual(new[] { "x", "y", "x", "" }, message.Select(f => f.Name).ToArray());
            var decoded = Message.Decode(message.Encode());
            Assert.AreEqual(new[] { "x", "y", "x", "" }, decoded.Select(f => f.Name).ToArray());
            Assert.AreEqual(2, decoded[2].GetInt32());
            Assert.AreEqual("empty name", decoded.GetString(""));
        }

        [Test]
        public void LookupReturnsTheFirstFieldWithTheName()
        {
            var message = new Message().AddInt32("x", 1).AddDouble("x", 2.5).AddInt32("x", 3);
            Assert.AreEqual(1, message.GetInt32("x"));
            Assert.AreEqual(0, message.IndexOf("x"));
            Assert.AreEqual(FieldType.Int32, message.GetField("x").Type);
            // The double is reachable by iteration only; first-wins lookup sees the int32.
            Assert.Throws<FieldTypeException>(() => message.GetDouble("x"));
            Assert.AreEqual(new object[] { 1, 2.5, 3 }, message.GetFields("x").Select(f => f.Value).ToArray());
        }

        [Test]
        public void LookupIsExactAndCaseSensitive()
        {
            var message = new Message().AddInt32("Price", 1).AddInt32("price ", 2).AddInt32("é", 3);
            Assert.IsFalse(message.HasField("price"));
            Assert.IsFalse(message.HasField("PRICE"));
            Assert.AreEqual(2, message.GetInt32("price "));
            // U+00E9 precomposed versus e + U+0301: different bytes, so a different name.
            Assert.AreEqual(3, message.GetInt32("\u00e9"));
            Assert.IsFalse(message.HasField("e\u0301"));
            Assert.Throws<FieldNotFoundException>(() => message.GetInt32("missing"));
        }

        [Test]
        public void GettersNeverConvertAndNameTheFieldAndBothTypes()
        {
            var message = new Message().AddInt32("qty", 5).AddDouble("px", 1.5).AddUInt32("u", 7);
            var error = Assert.Throws<FieldTypeException>(() => message.GetInt64("qty"));
            Assert.AreEqual("qty", error.FieldName);
            Assert.AreEqual(FieldType.Int64, error.Expected);
            Assert.AreEqual(FieldType.Int32, error.Actual);
            Assert.AreEqual("field `qty` is int32, not int64", error.Message);
            Assert.Throws<FieldTypeException>(() => message.GetDouble("qty"));
            Assert.Throws<FieldTypeException>(() => message.GetInt32("px"));
            Assert.Throws<FieldTypeException>(() => message.GetInt32("u"));
            Assert.Throws<FieldTypeException>(() => message.GetString("qty"));
            Assert.Throws<FieldTypeException>(() => message.GetField("qty").GetUInt32());
            Assert.IsInstanceOf<FieldException>(error);
            var missing = Assert.Throws<FieldNotFoundException>(() => message.GetInt32("nope"));
            Assert.AreEqual("nope", missing.FieldName);
            StringAssert.Contains("nope", missing.Message);
        }

        [Test]
        public void TryGettersReturnFalseWhenAbsentOrOfAnotherType()
        {
            var message = VectorTests.ReferenceFields();
            int i32;
            Assert.IsTrue(message.TryGetInt32("i32_1", out i32));
            Assert.AreEqual(123456, i32);
            Assert.IsFalse(message.TryGetInt32("i64_1", out i32));
            Assert.IsFalse(message.TryGetInt32("absent", out i32));
            long i64;
            Assert.IsFalse(message.TryGetInt64("i32_1", out i64));
            Assert.IsTrue(message.TryGetInt64("i64_2", out i64));
            Assert.AreEqual(-4123456789123456789L, i64);
            uint u32;
            Assert.IsTrue(message.TryGetUInt32("ui32", out u32));
            ulong u64;
            Assert.IsTrue(message.TryGetUInt64("ui64", out u64));
            Assert.IsFalse(message.TryGetUInt64("ui32", out u64));
            double d;
            Assert.IsTrue(message.TryGetDouble("d", out d));
            Assert.IsFalse(message.TryGetDouble("i32_1", out d));
            bool b;
            Assert.IsTrue(message.TryGetBool("b1", out b));
            Assert.IsTrue(b);
            string s;
            Assert.IsTrue(message.TryGetString("s", out s));
            Assert.AreEqual("hello, world!", s);
            Assert.IsFalse(message.TryGetString("d", out s));
            Assert.IsNull(s);
            byte[] blob;
            Assert.IsTrue(message.TryGetBlob("blob", out blob));
            Assert.IsFalse(message.TryGetBlob("s", out blob));
            Message nested;
            Assert.IsTrue(message.TryGetMessage("sm", out nested));
            Assert.AreEqual(2, nested.Count);
            Field field;
            Assert.IsFalse(message.TryGetField("nope", out field));
            Assert.IsNull(field);
        }

        [Test]
        public void InvalidUtf8StringsKeepTheirBytesAndReadAsReplacementCharacters()
        {
            byte[] raw = { 0x61, 0xff, 0x62, 0xc3 }; // "a", invalid byte, "b", truncated sequence
            var sent = new Message().AddStringBytes("s", raw);
            var decoded = Message.Decode(sent.Encode());
            var field = decoded.GetField("s");
            Assert.IsFalse(field.IsUtf8);
            Assert.AreEqual("a\uFFFDb\uFFFD", decoded.GetString("s"));
            CollectionAssert.AreEqual(raw, decoded.GetStringBytes("s"));
            // Re-encoding keeps the original bytes, not the substituted text.
            CollectionAssert.AreEqual(sent.Encode(), decoded.Encode());
            Assert.IsTrue(new Message().AddString("t", "ok").GetField("t").IsUtf8);
        }

        [Test]
        public void InvalidUtf8FieldNamesAreKeptButNotFoundByTextLookup()
        {
            // {name = 0xff, STRING "v"} encoded by hand.
            byte[] body = { 1, 0, 0, 0, 1, 0, 0, 0, 0xff, 1, 1, 0, 0, 0, (byte)'v' };
            var message = Message.Decode(body);
            Assert.AreEqual("\uFFFD", message[0].Name);
            Assert.IsFalse(message[0].NameIsUtf8);
            CollectionAssert.AreEqual(new byte[] { 0xff }, message[0].GetNameBytes());
            Assert.IsFalse(message.HasField("\uFFFD"));
            CollectionAssert.AreEqual(body, message.Encode());
        }

        [Test]
        public void RoundTripsEveryTypeIncludingEdgeValues()
        {
            double nanWithPayload = BitConverter.Int64BitsToDouble(0x7ff8000000000123);
            var message = new Message()
                .AddInt32("i32min", int.MinValue).AddInt32("i32max", int.MaxValue)
                .AddUInt32("u32max", uint.MaxValue).AddInt64("i64min", long.MinValue)
                .AddUInt64("u64max", ulong.MaxValue).AddDouble("negzero", -0.0)
                .AddDouble("nan", nanWithPayload).AddDouble("inf", double.PositiveInfinity)
                .AddString("unicode", "日本語 ✓ \U0001F600").AddString("empty", "")
                .AddBlob("emptyblob", new byte[0]).AddMessage("emptymsg", new Message());
            var decoded = Message.Decode(message.Encode());
            Assert.IsTrue(message.ValueEquals(decoded));
            Assert.AreEqual(int.MinValue, decoded.GetInt32("i32min"));
            Assert.AreEqual(uint.MaxValue, decoded.GetUInt32("u32max"));
            Assert.AreEqual(ulong.MaxValue, decoded.GetUInt64("u64max"));
            Assert.AreEqual(long.MinValue, decoded.GetInt64("i64min"));
            Assert.AreEqual(BitConverter.DoubleToInt64Bits(-0.0), BitConverter.DoubleToInt64Bits(decoded.GetDouble("negzero")));
            Assert.AreEqual(0x7ff8000000000123, BitConverter.DoubleToInt64Bits(decoded.GetDouble("nan")));
            Assert.AreEqual("日本語 ✓ \U0001F600", decoded.GetString("unicode"));
            Assert.AreEqual("", decoded.GetString("empty"));
            Assert.AreEqual(0, decoded.GetBlob("emptyblob").Length);
            Assert.AreEqual(0, decoded.GetMessage("emptymsg").Count);
        }

        [Test]
        public void BoolReadsOnlyOneAsTrue()
        {
            byte[] body = { 1, 0, 0, 0, 1, 0, 0, 0, (byte)'b', 8, 2 };
            Assert.IsFalse(Message.Decode(body).GetBool("b"));
            body[10] = 1;
            Assert.IsTrue(Message.Decode(body).GetBool("b"));
        }

        [Test]
        public void BlobsAreCopiedInAndOut()
        {
            var data = new byte[] { 1, 2, 3 };
            var message = new Message().AddBlob("b", data);
            data[0] = 9;
            var read = message.GetBlob("b");
            Assert.AreEqual(1, read[0]);
            read[1] = 9;
            Assert.AreEqual(2, message.GetBlob("b")[1]);
        }

        [Test]
        public void AMessageContainingItselfCannotBeEncoded()
        {
            var loop = new Message().AddInt32("x", 1);
            loop.AddMessage("self", loop);
            Assert.Throws<EncodeException>(() => loop.Encode());
            Assert.DoesNotThrow(() => loop.ToString());
        }

        [Test]
        public void RendersForPeople()
        {
            var message = new Message().AddString("sym", "IBM").AddDouble("px", 123.4)
                .AddMessage("meta", new Message().AddUInt32("seq", 7)).AddBool("ok", true)
                .AddBlob("raw", new byte[3]).AddString("q", "say \"hi\"");
            Assert.AreEqual("{sym=\"IBM\" px=123.4 meta={seq=7} ok=true raw=<3 bytes> q=\"say \\\"hi\\\"\"}",
                            message.ToString());
        }

        [Test]
        public void DecodeOfAWholeBufferRejectsTrailingBytes()
        {
            var bytes = new Message().AddInt32("a", 1).Encode();
            var longer = new byte[bytes.Length + 1];
            Buffer.BlockCopy(bytes, 0, longer, 0, bytes.Length);
            Assert.Throws<DecodeException>(() => Message.Decode(longer));
        }

        [Test]
        public void BytesAfterTheMessageInsideAFrameAreIgnored()
        {
            var frame = Frames.Encode(0, "A.B", null, WireAction.SendMessage, new Message().AddInt32("#", 7));
            var padded = new byte[frame.Length + 5];
            Buffer.BlockCopy(frame, 0, padded, 0, frame.Length);
            Wire.WriteInt32(padded, 0, padded.Length);
            var decoded = Frames.Decode(padded);
            Assert.AreEqual(7, decoded.Body.GetInt32("#"));
        }

        [Test]
        public void NullArgumentsAreRejected()
        {
            var message = new Message();
            Assert.Throws<ArgumentNullException>(() => message.AddString(null, "x"));
            Assert.Throws<ArgumentNullException>(() => message.AddString("x", null));
            Assert.Throws<ArgumentNullException>(() => message.AddMessage("x", null));
            Assert.Throws<ArgumentNullException>(() => message.GetInt32(null));
        }
    }
}
