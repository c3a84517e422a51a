using System;
using System.Globalization;
using System.Text;

namespace MessagingMesh
{
    /// <summary>The type of a field; the values are the wire codes (SPEC §4).</summary>
    public enum FieldType : byte
    {
        /// <summary>UTF-8 text (raw bytes kept when they are not valid UTF-8).</summary>
        String = 1,
        /// <summary>Signed 32-bit integer.</summary>
        Int32 = 2,
        /// <summary>Unsigned 32-bit integer.</summary>
        UInt32 = 3,
        /// <summary>Signed 64-bit integer.</summary>
        Int64 = 4,
        /// <summary>Unsigned 64-bit integer.</summary>
        UInt64 = 5,
        /// <summary>IEEE-754 double.</summary>
        Double = 6,
        /// <summary>A nested <see cref="MessagingMesh.Message"/>.</summary>
        Message = 7,
        /// <summary>Boolean.</summary>
        Bool = 8,
        /// <summary>Opaque bytes.</summary>
        Blob = 9,
    }

    /// <summary>Names of field types for error messages and rendering.</summary>
    public static class FieldTypes
    {
        /// <summary>
        /// The short name of a type: string, int32, uint32, int64, uint64, double, message, bool,
        /// blob (the names the other Messaging Mesh libraries use).
        /// </summary>
        public static string Name(FieldType type)
        {
            switch (type)
            {
                case FieldType.String: return "string";
                case FieldType.Int32: return "int32";
                case FieldType.UInt32: return "uint32";
                case FieldType.Int64: return "int64";
                case FieldType.UInt64: return "uint64";
                case FieldType.Double: return "double";
                case FieldType.Message: return "message";
                case FieldType.Bool: return "bool";
                case FieldType.Blob: return "blob";
                default: return "type " + (int)type;
            }
        }

        /// <summary>Whether <paramref name="code"/> is a type this library can decode (1 to 9).</summary>
        internal static bool IsKnown(byte code)
        {
            return code >= 1 && code <= 9;
        }
    }

    /// <summary>
    /// One named, typed value of a <see cref="Message"/>. Immutable.
    /// </summary>
    /// <remarks>
    /// <para>Typed getters never convert: <see cref="GetInt64"/> on an int32 field throws
    /// <see cref="FieldTypeException"/>. The <c>TryGet</c> forms return false instead.</para>
    /// <para><b>Strings that are not valid UTF-8.</b> A STRING field keeps the bytes it arrived
    /// with. Because a .NET <see cref="string"/> cannot hold invalid UTF-8, <see cref="GetString"/>
    /// returns the text with every invalid sequence replaced by U+FFFD; <see cref="IsUtf8"/> says
    /// whether that happened and <see cref="GetStringBytes"/> returns the original bytes. Re-encoding
    /// the field writes the original bytes. Field names follow the same rule: <see cref="Name"/> is
    /// the decoded (possibly U+FFFD-substituted) name and <see cref="GetNameBytes"/> the raw one.</para>
    /// </remarks>
    public sealed class Field
    {
        // Storage without boxing: integers, bools and doubles (as their IEEE bit pattern, so NaN
        // payloads survive a decode/encode round trip) live in `bits`; strings, blobs and messages
        // in the reference slots. A STRING holds `text`, `textBytes`, or both; whichever is missing
        // is computed on first use. Invariant: at least one of them is non-null for a STRING.
        private readonly string name;
        private readonly byte[] nameBytes;
        private readonly FieldType type;
        private readonly long bits;
        private string text;
        private byte[] textBytes;
        private readonly byte[] blob;
        private readonly Message message;
        private int utf8State; // 0 = unknown, 1 = valid UTF-8, 2 = not valid UTF-8

        private Field(string name, byte[] nameBytes, FieldType type, long bits, string text,
                      byte[] textBytes, byte[] blob, Message message)
        {
            this.name = name;
            this.nameBytes = nameBytes;
            this.type = type;
            this.bits = bits;
            this.text = text;
            this.textBytes = textBytes;
            this.blob = blob;
            this.message = message;
            utf8State = text != null ? 1 : 0;
        }

        /// <summary>A STRING field.</summary>
        public static Field FromString(string name, string value)
        {
            if (value == null) throw new ArgumentNullException("value");
            return new Field(CheckName(name), null, FieldType.String, 0, value, null, null, null);
        }

        /// <summary>
        /// A STRING field from raw bytes, which need not be valid UTF-8 (they are sent as they are).
        /// The array is copied.
        /// </summary>
        public static Field FromStringBytes(string name, byte[] value)
        {
            if (value == null) throw new ArgumentNullException("value");
            return new Field(CheckName(name), null, FieldType.String, 0, null, (byte[])value.Clone(),
                             null, null);
        }

        /// <summary>A SIGNED_INT32 field.</summary>
        public static Field FromInt32(string name, int value)
        {
            return new Field(CheckName(name), null, FieldType.Int32, value, null, null, null, null);
        }

        /// <summary>An UNSIGNED_INT32 field.</summary>
        public static Field FromUInt32(string name, uint value)
        {
            return new Field(CheckName(name), null, FieldType.UInt32, value, null, null, null, null);
        }

        /// <summary>A SIGNED_INT64 field.</summary>
        public static Field FromInt64(string name, long value)
        {
            return new Field(CheckName(name), null, FieldType.Int64, value, null, null, null, null);
        }

        /// <summary>An UNSIGNED_INT64 field.</summary>
        public static Field FromUInt64(string name, ulong value)
        {
            return new Field(CheckName(name), null, FieldType.UInt64, unchecked((long)value), null,
                             null, null, null);
        }

        /// <summary>A DOUBLE field. The exact bit pattern is kept (NaN payloads, -0.0).</summary>
        public static Field FromDouble(string name, double value)
        {
            return new Field(CheckName(name), null, FieldType.Double,
                             BitConverter.DoubleToInt64Bits(value), null, null, null, null);
        }

        /// <summary>A BOOL field.</summary>
        public static Field FromBool(string name, bool value)
        {
            return new Field(CheckName(name), null, FieldType.Bool, value ? 1 : 0, null, null, null,
                             null);
        }

        /// <summary>A BLOB field. The array is copied.</summary>
        public static Field FromBlob(string name, byte[] value)
        {
            if (value == null) throw new ArgumentNullException("value");
            return new Field(CheckName(name), null, FieldType.Blob, 0, null, null,
                             (byte[])value.Clone(), null);
        }

        /// <summary>
        /// A MESSAGE field holding <paramref name="value"/>. The message is held by reference, not
        /// copied: changing it afterwards changes what this field encodes to.
        /// </summary>
        public static Field FromMessage(string name, Message value)
        {
            if (value == null) throw new ArgumentNullException("value");
            return new Field(CheckName(name), null, FieldType.Message, 0, null, null, null, value);
        }

        // Constructors for the decoder: they take ownership of the arrays passed in.
        internal static Field Decoded(string name, byte[] nameBytes, FieldType type, long bits,
                                      byte[] bytes, Message message)
        {
            if (type == FieldType.String)
            {
                return new Field(name, nameBytes, type, 0, null, bytes, null, null);
            }
            return new Field(name, nameBytes, type, bits, null, null, bytes, message);
        }

        private static string CheckName(string name)
        {
            if (name == null) throw new ArgumentNullException("name");
            return name;
        }

        /// <summary>
        /// The field's name. Empty names are allowed. For a decoded name that is not valid UTF-8,
        /// invalid sequences are replaced by U+FFFD (see <see cref="GetNameBytes"/>).
        /// </summary>
        public string Name { get { return name; } }

        /// <summary>Whether the name's wire bytes are valid UTF-8 (always true for names set from
        /// .NET strings). Lookup by name only finds fields whose names are valid UTF-8.</summary>
        public bool NameIsUtf8 { get { return nameBytes == null || Utf8.IsValid(nameBytes); } }

        /// <summary>The name as it is (or will be) on the wire. Returns a copy.</summary>
        public byte[] GetNameBytes()
        {
            return nameBytes != null ? (byte[])nameBytes.Clone() : Utf8.Encode(name);
        }

        // The raw name without copying, or null when the name came from a .NET string.
        internal byte[] RawNameBytes { get { return nameBytes; } }

        /// <summary>The field's type.</summary>
        public FieldType Type { get { return type; } }

        /// <summary>
        /// For a STRING field: whether its bytes are valid UTF-8. When false, <see cref="GetString"/>
        /// substitutes U+FFFD and <see cref="GetStringBytes"/> has the original bytes.
        /// </summary>
        public bool IsUtf8
        {
            get
            {
                Expect(FieldType.String);
                if (utf8State == 0)
                {
                    utf8State = Utf8.IsValid(textBytes) ? 1 : 2;
                }
                return utf8State == 1;
            }
        }

        /// <summary>
        /// The value of a STRING field. Bytes that are not valid UTF-8 come back with each invalid
        /// sequence replaced by U+FFFD; use <see cref="GetStringBytes"/> for the raw bytes.
        /// </summary>
        public string GetString()
        {
            Expect(FieldType.String);
            if (text == null)
            {
                text = Utf8.DecodeLossy(textBytes, 0, textBytes.Length);
            }
            return text;
        }

        /// <summary>The bytes of a STRING field, exactly as received (or as they will be sent).
        /// Returns a copy.</summary>
        public byte[] GetStringBytes()
        {
            Expect(FieldType.String);
            return (byte[])StringBytes().Clone();
        }

        // The STRING's bytes without copying. Never modify the result.
        internal byte[] StringBytes()
        {
            if (textBytes == null)
            {
                textBytes = Utf8.Encode(text);
            }
            return textBytes;
        }

        // The STRING's bytes if they are already known, else null (the encoder then writes `text`).
        internal byte[] KnownStringBytes { get { return textBytes; } }

        // The STRING's text if it came from a .NET string.
        internal string KnownString { get { return text; } }

        /// <summary>The value of a SIGNED_INT32 field.</summary>
        public int GetInt32() { Expect(FieldType.Int32); return (int)bits; }

        /// <summary>The value of an UNSIGNED_INT32 field.</summary>
        public uint GetUInt32() { Expect(FieldType.UInt32); return (uint)bits; }

        /// <summary>The value of a SIGNED_INT64 field.</summary>
        public long GetInt64() { Expect(FieldType.Int64); return bits; }

        /// <summary>The value of an UNSIGNED_INT64 field.</summary>
        public ulong GetUInt64() { Expect(FieldType.UInt64); return unchecked((ulong)bits); }

        /// <summary>The value of a DOUBLE field.</summary>
        public double GetDouble() { Expect(FieldType.Double); return BitConverter.Int64BitsToDouble(bits); }

        /// <summary>The value of a BOOL field.</summary>
        public bool GetBool() { Expect(FieldType.Bool); return bits != 0; }

        /// <summary>The value of a BLOB field (a copy).</summary>
        public byte[] GetBlob() { Expect(FieldType.Blob); return (byte[])blob.Clone(); }

        // The BLOB's bytes without copying. Never modify the result.
        internal byte[] BlobBytes { get { return blob; } }

        /// <summary>The value of a MESSAGE field (the nested message itself, not a copy).</summary>
        public Message GetMessage() { Expect(FieldType.Message); return message; }

        // Raw 64-bit storage for the encoder: the integer, the double's bits, or 0/1 for a bool.
        internal long Bits { get { return bits; } }

        /// <summary>
        /// The value as an object: string, int, uint, long, ulong, double, bool, byte[] (a copy) or
        /// <see cref="Message"/>. Useful for generic display; prefer the typed getters.
        /// </summary>
        public object Value
        {
            get
            {
                switch (type)
                {
                    case FieldType.String: return GetString();
                    case FieldType.Int32: return GetInt32();
                    case FieldType.UInt32: return GetUInt32();
                    case FieldType.Int64: return GetInt64();
                    case FieldType.UInt64: return GetUInt64();
                    case FieldType.Double: return GetDouble();
                    case FieldType.Bool: return GetBool();
                    case FieldType.Blob: return GetBlob();
                    default: return message;
                }
            }
        }

        private void Expect(FieldType expected)
        {
            if (type != expected)
            {
                throw new FieldTypeException(name, expected, type);
            }
        }

        /// <summary>
        /// Whether two fields have the same name, type and value, compared as they would be
        /// encoded: strings and names byte for byte, doubles by bit pattern, messages field by field.
        /// </summary>
        public bool ValueEquals(Field other)
        {
            if (other == null || other.type != type) return false;
            if (!Utf8.BytesEqual(NameBytesForCompare(), other.NameBytesForCompare())) return false;
            switch (type)
            {
                case FieldType.String: return Utf8.BytesEqual(StringBytes(), other.StringBytes());
                case FieldType.Blob: return Utf8.BytesEqual(blob, other.blob);
                case FieldType.Message: return message.ValueEquals(other.message);
                default: return bits == other.bits;
            }
        }

        private byte[] NameBytesForCompare()
        {
            return nameBytes ?? Utf8.Encode(name);
        }

        /// <summary>Renders the field as <c>name=value</c>, e.g. <c>px=123.4</c> or <c>sym="IBM"</c>.</summary>
        public override string ToString()
        {
            var builder = new StringBuilder();
            Render(builder);
            return builder.ToString();
        }

        internal void Render(StringBuilder builder, int depth = 1)
        {
            builder.Append(name).Append('=');
            switch (type)
            {
                case FieldType.String:
                    builder.Append('"');
                    foreach (var c in GetString())
                    {
                        if (c == '"' || c == '\\') builder.Append('\\');
                        builder.Append(c);
                    }
                    builder.Append('"');
                    break;
                case FieldType.Int32:
                case FieldType.Int64:
                    builder.Append(bits.ToString(CultureInfo.InvariantCulture));
                    break;
                case FieldType.UInt32:
                    builder.Append(((uint)bits).ToString(CultureInfo.InvariantCulture));
                    break;
                case FieldType.UInt64:
                    builder.Append(unchecked((ulong)bits).ToString(CultureInfo.InvariantCulture));
                    break;
                case FieldType.Double:
                    builder.Append(BitConverter.Int64BitsToDouble(bits).ToString("R", CultureInfo.InvariantCulture));
                    break;
                case FieldType.Bool:
                    builder.Append(bits != 0 ? "true" : "false");
                    break;
                case FieldType.Blob:
                    builder.Append("<").Append(blob.Length).Append(" bytes>");
                    break;
                default:
                    message.Render(builder, depth + 1);
                    break;
            }
        }
    }
}
