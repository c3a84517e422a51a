using System;
using System.Collections.Generic;

namespace MessagingMesh
{
    /// <summary>The action byte of a frame header (SPEC §5).</summary>
    internal enum WireAction : byte
    {
        None = 0,
        Connect = 1,
        Disconnect = 2,
        Ack = 3,
        Subscribe = 4,
        Unsubscribe = 5,
        SendMessage = 6,
        ConnectMeshPeer = 7,
        Ping = 8,
        Pong = 9,
        Error = 10,
        NoResponders = 11,
    }

    /// <summary>
    /// Protocol constants. Frame layout: <c>i32 length</c> (counting itself), <c>u32
    /// subscription_id</c>, <c>str subject</c>, <c>str reply_subject</c>, <c>u8 action</c>, Message.
    /// </summary>
    internal static class Wire
    {
        /// <summary>The smallest legal frame: length, id, two empty strings, action, empty Message.</summary>
        internal const int MinFrameSize = 21;

        /// <summary>Default largest frame accepted or sent: the gateway's default (64 MiB).</summary>
        internal const int DefaultMaxFrame = 64 * 1024 * 1024;

        /// <summary>The top-level Message is depth 1; depth 65 is a decode error (SPEC §4).</summary>
        internal const int MaxDepth = 64;

        /// <summary>Offset of the subscription id, which the gateway patches in place.</summary>
        internal const int SubscriptionIdOffset = 4;

        /// <summary>
        /// The smallest possible encoded field: name length (4) + type (1) + a bool (1). Used to
        /// bound list capacity by the bytes actually present, never by a declared count.
        /// </summary>
        internal const int MinFieldSize = 6;

        internal static int ReadInt32(byte[] buffer, int offset)
        {
            return buffer[offset] | (buffer[offset + 1] << 8) | (buffer[offset + 2] << 16)
                   | (buffer[offset + 3] << 24);
        }

        internal static long ReadInt64(byte[] buffer, int offset)
        {
            uint low = (uint)ReadInt32(buffer, offset);
            uint high = (uint)ReadInt32(buffer, offset + 4);
            return (long)(((ulong)high << 32) | low);
        }

        internal static void WriteInt32(byte[] buffer, int offset, int value)
        {
            buffer[offset] = (byte)value;
            buffer[offset + 1] = (byte)(value >> 8);
            buffer[offset + 2] = (byte)(value >> 16);
            buffer[offset + 3] = (byte)(value >> 24);
        }

        internal static void WriteInt64(byte[] buffer, int offset, long value)
        {
            WriteInt32(buffer, offset, (int)value);
            WriteInt32(buffer, offset + 4, (int)(value >> 32));
        }
    }

    /// <summary>
    /// A bounded reader over <c>buffer[position..end)</c>. Every length and count is checked
    /// against the bytes that are actually there before anything is allocated, so bad input
    /// produces a <see cref="DecodeException"/> — never an exception from the runtime, and never
    /// an allocation sized by the input. Offsets in errors count from <see cref="origin"/>.
    /// </summary>
    internal struct WireReader
    {
        private readonly byte[] buffer;
        private readonly int end;
        private readonly int origin;
        private int position;

        /// <summary>Reads <c>buffer[offset..offset+count)</c>; error offsets count from <paramref name="offset"/>.</summary>
        internal WireReader(byte[] buffer, int offset, int count)
        {
            if (offset < 0 || count < 0 || offset > buffer.Length - count)
            {
                throw new ArgumentOutOfRangeException("count");
            }
            this.buffer = buffer;
            origin = offset;
            position = offset;
            end = offset + count;
        }

        internal int Position { get { return position - origin; } }

        internal byte[] Bytes { get { return buffer; } }

        internal int Remaining { get { return end - position; } }

        private void Need(int count, string what)
        {
            if (end - position < count)
            {
                throw new DecodeException(what + " runs past the end of the frame", position - origin);
            }
        }

        internal void Skip(int count, string what)
        {
            Need(count, what);
            position += count;
        }

        internal byte ReadByte(string what)
        {
            Need(1, what);
            return buffer[position++];
        }

        internal int ReadInt32(string what)
        {
            Need(4, what);
            int value = Wire.ReadInt32(buffer, position);
            position += 4;
            return value;
        }

        internal long ReadInt64(string what)
        {
            Need(8, what);
            long value = Wire.ReadInt64(buffer, position);
            position += 8;
            return value;
        }

        /// <summary>Reads a length prefix and checks the bytes are there; returns the start offset
        /// of the bytes in the buffer and advances past them.</summary>
        internal int ReadSpan(string what, out int length)
        {
            int at = position;
            length = ReadInt32(what + " length");
            if (length < 0)
            {
                throw new DecodeException("negative " + what + " length (" + length + ")", at - origin);
            }
            if (end - position < length)
            {
                throw new DecodeException(what + " runs past the end of the frame", at - origin);
            }
            int start = position;
            position += length;
            return start;
        }

        internal byte[] ReadBytes(string what)
        {
            int length;
            int start = ReadSpan(what, out length);
            var bytes = new byte[length];
            Buffer.BlockCopy(buffer, start, bytes, 0, length);
            return bytes;
        }

        /// <summary>Reads a <c>str</c> as text (U+FFFD for invalid UTF-8); reports validity.</summary>
        internal string ReadString(string what, out bool utf8)
        {
            int length;
            int start = ReadSpan(what, out length);
            utf8 = Utf8.IsValid(buffer, start, length);
            return Utf8.DecodeLossy(buffer, start, length);
        }

        /// <summary>Decodes a Message at the current position. <paramref name="depth"/> is the
        /// depth of the Message being read (the top level is 1).</summary>
        internal Message ReadMessage(int depth)
        {
            int at = position;
            if (depth > Wire.MaxDepth)
            {
                throw new DecodeException("message nested deeper than " + Wire.MaxDepth + " levels",
                                          at - origin);
            }
            int count = ReadInt32("field count");
            if (count < 0)
            {
                throw new DecodeException("negative field count (" + count + ")", at - origin);
            }
            // Capacity from the bytes present, not from the declared count.
            var fields = new List<Field>(Math.Min(count, Remaining / Wire.MinFieldSize));
            for (int i = 0; i < count; i++)
            {
                fields.Add(ReadField(depth));
            }
            return Message.FromDecodedFields(fields);
        }

        private Field ReadField(int depth)
        {
            int nameLength;
            int nameStart = ReadSpan("field name", out nameLength);
            byte[] nameBytes = null;
            string name;
            if (Utf8.IsValid(buffer, nameStart, nameLength))
            {
                name = Utf8.DecodeLossy(buffer, nameStart, nameLength);
            }
            else
            {
                nameBytes = new byte[nameLength];
                Buffer.BlockCopy(buffer, nameStart, nameBytes, 0, nameLength);
                name = Utf8.DecodeLossy(nameBytes, 0, nameLength);
            }
            int typeAt = position;
            byte code = ReadByte("field type");
            if (!FieldTypes.IsKnown(code))
            {
                throw new DecodeException("invalid field type " + code, typeAt - origin);
            }
            var type = (FieldType)code;
            switch (type)
            {
                case FieldType.String:
                    return Field.Decoded(name, nameBytes, type, 0, ReadBytes("string"), null);
                case FieldType.Int32:
                    return Field.Decoded(name, nameBytes, type, ReadInt32("int32 value"), null, null);
                case FieldType.UInt32:
                    return Field.Decoded(name, nameBytes, type, (uint)ReadInt32("uint32 value"), null,
                                         null);
                case FieldType.Int64:
                    return Field.Decoded(name, nameBytes, type, ReadInt64("int64 value"), null, null);
                case FieldType.UInt64:
                    return Field.Decoded(name, nameBytes, type, ReadInt64("uint64 value"), null, null);
                case FieldType.Double:
                    return Field.Decoded(name, nameBytes, type, ReadInt64("double value"), null, null);
                case FieldType.Bool:
                    // Only 01 is true (SPEC §2).
                    return Field.Decoded(name, nameBytes, type, ReadByte("bool value") == 1 ? 1 : 0,
                                         null, null);
                case FieldType.Blob:
                    return Field.Decoded(name, nameBytes, type, 0, ReadBytes("blob"), null);
                default:
                    return Field.Decoded(name, nameBytes, type, 0, null, ReadMessage(depth + 1));
            }
        }
    }

    /// <summary>
    /// A growable byte buffer that frames and Messages are encoded into.
    /// Invariant: <c>0 &lt;= Length &lt;= Buffer.Length</c>.
    /// </summary>
    internal sealed class WireWriter
    {
        internal byte[] Buffer;
        internal int Length;

        internal WireWriter(int capacity)
        {
            Buffer = new byte[Math.Max(capacity, 64)];
        }

        internal void Reserve(int count)
        {
            if (Buffer.Length - Length < count)
            {
                long wanted = Math.Max((long)Buffer.Length * 2, (long)Length + count);
                if (wanted > int.MaxValue - 64)
                {
                    wanted = (long)Length + count;
                    if (wanted > int.MaxValue - 64)
                    {
                        throw new EncodeException("frame too large to encode");
                    }
                }
                var bigger = new byte[wanted];
                System.Buffer.BlockCopy(Buffer, 0, bigger, 0, Length);
                Buffer = bigger;
            }
        }

        internal void WriteByte(byte value)
        {
            Reserve(1);
            Buffer[Length++] = value;
        }

        internal void WriteInt32(int value)
        {
            Reserve(4);
            Wire.WriteInt32(Buffer, Length, value);
            Length += 4;
        }

        internal void WriteInt64(long value)
        {
            Reserve(8);
            Wire.WriteInt64(Buffer, Length, value);
            Length += 8;
        }

        internal void WriteBytes(byte[] bytes)
        {
            Reserve(4 + bytes.Length);
            Wire.WriteInt32(Buffer, Length, bytes.Length);
            System.Buffer.BlockCopy(bytes, 0, Buffer, Length + 4, bytes.Length);
            Length += 4 + bytes.Length;
        }

        internal void WriteString(string text)
        {
            int count = Utf8.ByteCount(text);
            Reserve(4 + count);
            Wire.WriteInt32(Buffer, Length, count);
            Utf8.Write(text, Buffer, Length + 4);
            Length += 4 + count;
        }

        /// <summary>Encodes a Message. Throws <see cref="EncodeException"/> past depth 64
        /// (which also stops a message that contains itself).</summary>
        internal void WriteMessage(Message message, int depth)
        {
            if (depth > Wire.MaxDepth)
            {
                throw new EncodeException("message nested deeper than " + Wire.MaxDepth
                                          + " levels (does it contain itself?)");
            }
            var fields = message.FieldList;
            int count = fields.Count;
            WriteInt32(count);
            for (int i = 0; i < count; i++)
            {
                var field = fields[i];
                var rawName = field.RawNameBytes;
                if (rawName != null) WriteBytes(rawName); else WriteString(field.Name);
                WriteByte((byte)field.Type);
                switch (field.Type)
                {
                    case FieldType.String:
                        var known = field.KnownStringBytes;
                        if (known != null) WriteBytes(known); else WriteString(field.KnownString);
                        break;
                    case FieldType.Int32:
                    case FieldType.UInt32:
                        WriteInt32((int)field.Bits);
                        break;
                    case FieldType.Int64:
                    case FieldType.UInt64:
                    case FieldType.Double:
                        WriteInt64(field.Bits);
                        break;
                    case FieldType.Bool:
                        WriteByte(field.Bits != 0 ? (byte)1 : (byte)0);
                        break;
                    case FieldType.Blob:
                        WriteBytes(field.BlobBytes);
                        break;
                    default:
                        WriteMessage(field.GetMessage(), depth + 1);
                        break;
                }
            }
        }

        /// <summary>
        /// Appends one whole frame. The length is written as a placeholder of -1 and patched at the
        /// end, so a frame left half-written by an exception could never pass for a valid one; on
        /// an exception the buffer is rolled back to where the frame started anyway.
        /// </summary>
        internal void WriteFrame(uint subscriptionId, string subject, string replySubject,
                                 WireAction action, Message body)
        {
            int start = Length;
            try
            {
                Reserve(4 + 4 + 4 + 4 + 1 + 4);
                WriteInt32(-1);
                WriteInt32((int)subscriptionId);
                WriteString(subject ?? "");
                WriteString(replySubject ?? "");
                WriteByte((byte)action);
                if (body == null) WriteInt32(0); else WriteMessage(body, 1);
                Wire.WriteInt32(Buffer, start, Length - start);
            }
            catch
            {
                Length = start;
                throw;
            }
        }

        /// <summary>Appends a frame whose body is already encoded (used to echo a PING body).</summary>
        internal void WriteFrameRawBody(WireAction action, byte[] body, int offset, int count)
        {
            int start = Length;
            Reserve(4 + 4 + 4 + 4 + 1 + count);
            WriteInt32(-1);
            WriteInt32(0);
            WriteInt32(0);
            WriteInt32(0);
            WriteByte((byte)action);
            System.Buffer.BlockCopy(body, offset, Buffer, Length, count);
            Length += count;
            Wire.WriteInt32(Buffer, start, Length - start);
        }

        internal byte[] ToArray()
        {
            var bytes = new byte[Length];
            System.Buffer.BlockCopy(Buffer, 0, bytes, 0, Length);
            return bytes;
        }
    }

    /// <summary>A decoded frame header (SPEC §3) plus where the body starts.</summary>
    internal sealed class FrameHeader
    {
        internal uint SubscriptionId;
        internal string Subject;
        internal string ReplySubject;
        internal bool SubjectsAreUtf8;
        internal WireAction Action;
        /// <summary>Offset of the Message within the frame.</summary>
        internal int BodyOffset;

        /// <summary>
        /// Parses the header of the frame in <c>frame[offset..offset+length)</c> (the frame's own
        /// length prefix included). The length has already been checked by the deframer.
        /// </summary>
        internal static FrameHeader Parse(byte[] frame, int offset, int length, SubjectCache cache = null)
        {
            var reader = new WireReader(frame, offset, length);
            reader.ReadInt32("frame length");
            var header = new FrameHeader();
            header.SubscriptionId = (uint)reader.ReadInt32("subscription id");
            bool subjectUtf8;
            bool replyUtf8;
            header.Subject = cache != null
                ? cache.Read(ref reader, "subject", out subjectUtf8)
                : reader.ReadString("subject", out subjectUtf8);
            header.ReplySubject = reader.ReadString("reply subject", out replyUtf8);
            header.SubjectsAreUtf8 = subjectUtf8 && replyUtf8;
            header.Action = (WireAction)reader.ReadByte("action");
            header.BodyOffset = reader.Position;
            return header;
        }

        /// <summary>Decodes the frame's body. Bytes after the Message are ignored (SPEC §1).</summary>
        internal Message DecodeBody(byte[] frame, int offset, int length)
        {
            var reader = new WireReader(frame, offset, length);
            // Skip to the body; offsets in errors still count from the start of the frame.
            reader.Skip(BodyOffset, "header");
            return reader.ReadMessage(1);
        }
    }

    /// <summary>
    /// Remembers the last subject the socket reader decoded, so that a stream of messages on one
    /// subject costs one string, not one per message. Owned by the reader thread.
    /// </summary>
    internal sealed class SubjectCache
    {
        private readonly byte[] bytes = new byte[Subject.MaxLength];
        private int length = -1;
        private string text;
        private bool utf8;

        internal string Read(ref WireReader reader, string what, out bool isUtf8)
        {
            int count;
            int start = reader.ReadSpan(what, out count);
            byte[] frame = reader.Bytes;
            if (count == length)
            {
                int i = 0;
                while (i < count && frame[start + i] == bytes[i]) i++;
                if (i == count)
                {
                    isUtf8 = utf8;
                    return text;
                }
            }
            isUtf8 = Utf8.IsValid(frame, start, count);
            string decoded = Utf8.DecodeLossy(frame, start, count);
            if (count <= bytes.Length)
            {
                System.Buffer.BlockCopy(frame, start, bytes, 0, count);
                length = count;
                text = decoded;
                utf8 = isUtf8;
            }
            return decoded;
        }
    }
}
