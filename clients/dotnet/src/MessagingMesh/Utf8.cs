using System;
using System.Text;

namespace MessagingMesh
{
    /// <summary>UTF-8 helpers shared by the codec and the subject grammar.</summary>
    internal static class Utf8
    {
        /// <summary>Decodes with U+FFFD for every invalid sequence; never throws.</summary>
        internal static readonly Encoding Lossy = new UTF8Encoding(false, false);

        internal static byte[] Encode(string text)
        {
            return Lossy.GetBytes(text);
        }

        internal static string DecodeLossy(byte[] bytes, int offset, int count)
        {
            if (count == 0) return "";
            return Lossy.GetString(bytes, offset, count);
        }

        internal static bool IsValid(byte[] bytes)
        {
            return IsValid(bytes, 0, bytes.Length);
        }

        /// <summary>Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.</summary>
        internal static bool IsValid(byte[] bytes, int offset, int count)
        {
            int i = offset;
            int end = offset + count;
            while (i < end)
            {
                int b = bytes[i];
                if (b < 0x80) { i++; continue; }
                int need;
                int min;
                int cp;
                if (b >= 0xC2 && b <= 0xDF) { need = 1; min = 0x80; cp = b & 0x1F; }
                else if (b >= 0xE0 && b <= 0xEF) { need = 2; min = 0x800; cp = b & 0x0F; }
                else if (b >= 0xF0 && b <= 0xF4) { need = 3; min = 0x10000; cp = b & 0x07; }
                else return false;
                if (end - i - 1 < need) return false;
                for (int k = 1; k <= need; k++)
                {
                    int c = bytes[i + k];
                    if ((c & 0xC0) != 0x80) return false;
                    cp = (cp << 6) | (c & 0x3F);
                }
                if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
                i += need + 1;
            }
            return true;
        }

        /// <summary>
        /// The number of bytes <paramref name="text"/> takes in UTF-8. Lone surrogates count as
        /// the three bytes of U+FFFD, which is what the encoder writes for them.
        /// </summary>
        internal static int ByteCount(string text)
        {
            int length = text.Length;
            for (int i = 0; i < length; i++)
            {
                if (text[i] >= 0x80) return Lossy.GetByteCount(text);
            }
            return length;
        }

        /// <summary>Writes <paramref name="text"/> as UTF-8 at <paramref name="offset"/>; returns
        /// the number of bytes written. The caller has made room (see <see cref="ByteCount"/>).</summary>
        internal static int Write(string text, byte[] buffer, int offset)
        {
            int length = text.Length;
            for (int i = 0; i < length; i++)
            {
                char c = text[i];
                if (c >= 0x80)
                {
                    return Lossy.GetBytes(text, 0, length, buffer, offset);
                }
                buffer[offset + i] = (byte)c;
            }
            return length;
        }

        internal static bool BytesEqual(byte[] a, byte[] b)
        {
            if (ReferenceEquals(a, b)) return true;
            if (a == null || b == null || a.Length != b.Length) return false;
            for (int i = 0; i < a.Length; i++)
            {
                if (a[i] != b[i]) return false;
            }
            return true;
        }
    }
}
