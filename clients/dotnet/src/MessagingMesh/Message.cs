using System;
using System.Collections;
using System.Collections.Generic;
using System.Text;

namespace MessagingMesh
{
    /// <summary>
    /// An ordered list of named, typed fields: what a connection sends and receives.
    /// </summary>
    /// <remarks>
    /// <list type="bullet">
    /// <item>Fields keep insertion order on the wire and after decoding. Names may be empty and
    /// may repeat.</item>
    /// <item>Lookup by name is exact (ordinal, case-sensitive — byte for byte on the UTF-8
    /// encoding) and returns the <b>first</b> field with that name; iteration reaches every
    /// field.</item>
    /// <item>Typed getters never convert: reading an int32 field with <see cref="GetInt64"/> throws
    /// <see cref="FieldTypeException"/> naming the field and both types; a missing field throws
    /// <see cref="FieldNotFoundException"/>. The <c>TryGet</c> forms return false in both cases.</item>
    /// <item>Strings that are not valid UTF-8: see <see cref="Field"/> — the text has U+FFFD in
    /// place of invalid sequences and the raw bytes stay available through
    /// <see cref="GetStringBytes"/>.</item>
    /// <item>Nesting is limited to 64 levels (the top-level message is level 1), on encode and
    /// decode.</item>
    /// </list>
    /// <para>The <c>Add</c> methods return the message, so they chain:
    /// <c>new Message().AddString("sym", "IBM").AddDouble("px", 123.4)</c>.</para>
    /// <para>A message is not synchronised: do not change it from one thread while another reads
    /// or sends it. A received message belongs to the callback that receives it.</para>
    /// </remarks>
    public sealed class Message : IEnumerable<Field>
    {
        /// <summary>Fields in wire order.</summary>
        private readonly List<Field> fields;

        /// <summary>An empty message.</summary>
        public Message()
        {
            fields = new List<Field>();
        }

        private Message(List<Field> fields)
        {
            this.fields = fields;
        }

        internal static Message FromDecodedFields(List<Field> fields)
        {
            return new Message(fields);
        }

        internal List<Field> FieldList { get { return fields; } }

        /// <summary>The number of fields.</summary>
        public int Count { get { return fields.Count; } }

        /// <summary>The field at <paramref name="index"/>, in wire order.</summary>
        public Field this[int index] { get { return fields[index]; } }

        /// <summary>All fields, in wire order (a read-only view).</summary>
        public IReadOnlyList<Field> Fields { get { return fields.AsReadOnly(); } }

        /// <summary>Enumerates the fields in wire order.</summary>
        public IEnumerator<Field> GetEnumerator() { return fields.GetEnumerator(); }

        IEnumerator IEnumerable.GetEnumerator() { return fields.GetEnumerator(); }

        // ----- building -----

        /// <summary>Appends a field.</summary>
        public Message Add(Field field)
        {
            if (field == null) throw new ArgumentNullException("field");
            fields.Add(field);
            return this;
        }

        /// <summary>Appends a STRING field.</summary>
        public Message AddString(string name, string value) { return Add(Field.FromString(name, value)); }

        /// <summary>Appends a STRING field from raw bytes (sent as they are, UTF-8 or not).</summary>
        public Message AddStringBytes(string name, byte[] value) { return Add(Field.FromStringBytes(name, value)); }

        /// <summary>Appends a SIGNED_INT32 field.</summary>
        public Message AddInt32(string name, int value) { return Add(Field.FromInt32(name, value)); }

        /// <summary>Appends an UNSIGNED_INT32 field.</summary>
        public Message AddUInt32(string name, uint value) { return Add(Field.FromUInt32(name, value)); }

        /// <summary>Appends a SIGNED_INT64 field.</summary>
        public Message AddInt64(string name, long value) { return Add(Field.FromInt64(name, value)); }

        /// <summary>Appends an UNSIGNED_INT64 field.</summary>
        public Message AddUInt64(string name, ulong value) { return Add(Field.FromUInt64(name, value)); }

        /// <summary>Appends a DOUBLE field.</summary>
        public Message AddDouble(string name, double value) { return Add(Field.FromDouble(name, value)); }

        /// <summary>Appends a BOOL field.</summary>
        public Message AddBool(string name, bool value) { return Add(Field.FromBool(name, value)); }

        /// <summary>Appends a BLOB field (the array is copied).</summary>
        public Message AddBlob(string name, byte[] value) { return Add(Field.FromBlob(name, value)); }

        /// <summary>Appends a MESSAGE field holding <paramref name="value"/> by reference.</summary>
        public Message AddMessage(string name, Message value) { return Add(Field.FromMessage(name, value)); }

        // ----- lookup -----

        /// <summary>Whether a field has this name.</summary>
        public bool HasField(string name)
        {
            return IndexOf(name) >= 0;
        }

        /// <summary>The first field with this name; throws <see cref="FieldNotFoundException"/>.</summary>
        public Field GetField(string name)
        {
            int index = IndexOf(name);
            if (index < 0) throw new FieldNotFoundException(name);
            return fields[index];
        }

        /// <summary>The first field with this name, or false.</summary>
        public bool TryGetField(string name, out Field field)
        {
            int index = IndexOf(name);
            field = index >= 0 ? fields[index] : null;
            return index >= 0;
        }

        /// <summary>Every field with this name, in wire order.</summary>
        public IEnumerable<Field> GetFields(string name)
        {
            if (name == null) throw new ArgumentNullException("name");
            foreach (var field in fields)
            {
                if (Matches(field, name)) yield return field;
            }
        }

        /// <summary>
        /// Index of the first field named <paramref name="name"/>, or -1. A linear scan: messages
        /// are small, and a scan keeps first-wins order without a map to maintain (the map would
        /// have to be rebuilt or kept in step on every Add).
        /// </summary>
        public int IndexOf(string name)
        {
            if (name == null) throw new ArgumentNullException("name");
            for (int i = 0; i < fields.Count; i++)
            {
                if (Matches(fields[i], name)) return i;
            }
            return -1;
        }

        // A name that was not valid UTF-8 on the wire never matches: its U+FFFD form is not the
        // name it was sent with.
        private static bool Matches(Field field, string name)
        {
            return string.Equals(field.Name, name, StringComparison.Ordinal)
                   && (field.RawNameBytes == null || field.NameIsUtf8);
        }

        private Field Typed(string name, FieldType type)
        {
            var field = GetField(name);
            if (field.Type != type) throw new FieldTypeException(name, type, field.Type);
            return field;
        }

        private Field TryTyped(string name, FieldType type)
        {
            int index = IndexOf(name);
            if (index < 0) return null;
            var field = fields[index];
            return field.Type == type ? field : null;
        }

        /// <summary>The text of the first field with this name (U+FFFD for invalid UTF-8).</summary>
        public string GetString(string name) { return Typed(name, FieldType.String).GetString(); }

        /// <summary>The raw bytes of the first field with this name, which must be a STRING.</summary>
        public byte[] GetStringBytes(string name) { return Typed(name, FieldType.String).GetStringBytes(); }

        /// <summary>The value of the first field with this name, which must be a SIGNED_INT32.</summary>
        public int GetInt32(string name) { return Typed(name, FieldType.Int32).GetInt32(); }

        /// <summary>The value of the first field with this name, which must be an UNSIGNED_INT32.</summary>
        public uint GetUInt32(string name) { return Typed(name, FieldType.UInt32).GetUInt32(); }

        /// <summary>The value of the first field with this name, which must be a SIGNED_INT64.</summary>
        public long GetInt64(string name) { return Typed(name, FieldType.Int64).GetInt64(); }

        /// <summary>The value of the first field with this name, which must be an UNSIGNED_INT64.</summary>
        public ulong GetUInt64(string name) { return Typed(name, FieldType.UInt64).GetUInt64(); }

        /// <summary>The value of the first field with this name, which must be a DOUBLE.</summary>
        public double GetDouble(string name) { return Typed(name, FieldType.Double).GetDouble(); }

        /// <summary>The value of the first field with this name, which must be a BOOL.</summary>
        public bool GetBool(string name) { return Typed(name, FieldType.Bool).GetBool(); }

        /// <summary>A copy of the bytes of the first field with this name, which must be a BLOB.</summary>
        public byte[] GetBlob(string name) { return Typed(name, FieldType.Blob).GetBlob(); }

        /// <summary>The nested message of the first field with this name, which must be a MESSAGE.</summary>
        public Message GetMessage(string name) { return Typed(name, FieldType.Message).GetMessage(); }

        /// <summary>Like <see cref="GetString"/>, but false when absent or of another type.</summary>
        public bool TryGetString(string name, out string value)
        {
            var field = TryTyped(name, FieldType.String);
            value = field != null ? field.GetString() : null;
            return field != null;
        }

        /// <summary>Like <see cref="GetStringBytes"/>, but false when absent or of another type.</summary>
        public bool TryGetStringBytes(string name, out byte[] value)
        {
            var field = TryTyped(name, FieldType.String);
            value = field != null ? field.GetStringBytes() : null;
            return field != null;
        }

        /// <summary>Like <see cref="GetInt32"/>, but false when absent or of another type.</summary>
        public bool TryGetInt32(string name, out int value)
        {
            var field = TryTyped(name, FieldType.Int32);
            value = field != null ? field.GetInt32() : 0;
            return field != null;
        }

        /// <summary>Like <see cref="GetUInt32"/>, but false when absent or of another type.</summary>
        public bool TryGetUInt32(string name, out uint value)
        {
            var field = TryTyped(name, FieldType.UInt32);
            value = field != null ? field.GetUInt32() : 0;
            return field != null;
        }

        /// <summary>Like <see cref="GetInt64"/>, but false when absent or of another type.</summary>
        public bool TryGetInt64(string name, out long value)
        {
            var field = TryTyped(name, FieldType.Int64);
            value = field != null ? field.GetInt64() : 0;
            return field != null;
        }

        /// <summary>Like <see cref="GetUInt64"/>, but false when absent or of another type.</summary>
        public bool TryGetUInt64(string name, out ulong value)
        {
            var field = TryTyped(name, FieldType.UInt64);
            value = field != null ? field.GetUInt64() : 0;
            return field != null;
        }

        /// <summary>Like <see cref="GetDouble"/>, but false when absent or of another type.</summary>
        public bool TryGetDouble(string name, out double value)
        {
            var field = TryTyped(name, FieldType.Double);
            value = field != null ? field.GetDouble() : 0;
            return field != null;
        }

        /// <summary>Like <see cref="GetBool"/>, but false when absent or of another type.</summary>
        public bool TryGetBool(string name, out bool value)
        {
            var field = TryTyped(name, FieldType.Bool);
            value = field != null && field.GetBool();
            return field != null;
        }

        /// <summary>Like <see cref="GetBlob"/>, but false when absent or of another type.</summary>
        public bool TryGetBlob(string name, out byte[] value)
        {
            var field = TryTyped(name, FieldType.Blob);
            value = field != null ? field.GetBlob() : null;
            return field != null;
        }

        /// <summary>Like <see cref="GetMessage"/>, but false when absent or of another type.</summary>
        public bool TryGetMessage(string name, out Message value)
        {
            var field = TryTyped(name, FieldType.Message);
            value = field != null ? field.GetMessage() : null;
            return field != null;
        }

        // ----- codec -----

        /// <summary>
        /// Encodes the message as it travels in a frame body: <c>i32 field_count</c> then the
        /// fields. Throws <see cref="EncodeException"/> if it is nested deeper than 64 levels.
        /// </summary>
        public byte[] Encode()
        {
            var writer = new WireWriter(64);
            writer.WriteMessage(this, 1);
            return writer.ToArray();
        }

        /// <summary>Decodes a message that fills <paramref name="bytes"/> exactly.</summary>
        public static Message Decode(byte[] bytes)
        {
            if (bytes == null) throw new ArgumentNullException("bytes");
            return Decode(bytes, 0, bytes.Length);
        }

        /// <summary>
        /// Decodes a message that fills <c>bytes[offset..offset+count)</c> exactly. Throws
        /// <see cref="DecodeException"/> for malformed input (including trailing bytes, a field type
        /// of 0 or 10+, and nesting deeper than 64 levels); never allocates more than the input
        /// could describe.
        /// </summary>
        public static Message Decode(byte[] bytes, int offset, int count)
        {
            if (bytes == null) throw new ArgumentNullException("bytes");
            var reader = new WireReader(bytes, offset, count);
            var message = reader.ReadMessage(1);
            if (reader.Remaining != 0)
            {
                throw new DecodeException(reader.Remaining + " trailing bytes after the message",
                                          reader.Position);
            }
            return message;
        }

        /// <summary>
        /// Whether both messages hold the same fields in the same order, compared as they would be
        /// encoded (doubles by bit pattern, strings byte for byte).
        /// </summary>
        public bool ValueEquals(Message other)
        {
            return ValueEquals(other, 1);
        }

        private bool ValueEquals(Message other, int depth)
        {
            if (other == null || other.fields.Count != fields.Count) return false;
            if (ReferenceEquals(this, other)) return true;
            if (depth > Wire.MaxDepth) return false;
            for (int i = 0; i < fields.Count; i++)
            {
                if (!fields[i].ValueEquals(other.fields[i])) return false;
            }
            return true;
        }

        /// <summary>
        /// Renders the message for people, e.g. <c>{sym="IBM" px=123.4 meta={seq=7}}</c>. Blobs show
        /// their size; nesting past 64 levels shows as <c>{...}</c>.
        /// </summary>
        public override string ToString()
        {
            var builder = new StringBuilder();
            Render(builder, 1);
            return builder.ToString();
        }

        internal void Render(StringBuilder builder, int depth)
        {
            if (depth > Wire.MaxDepth)
            {
                builder.Append("{...}");
                return;
            }
            builder.Append('{');
            for (int i = 0; i < fields.Count; i++)
            {
                if (i > 0) builder.Append(' ');
                fields[i].Render(builder, depth);
            }
            builder.Append('}');
        }
    }
}
