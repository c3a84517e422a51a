using System;
using System.Net.Sockets;

namespace MessagingMesh
{
    /// <summary>
    /// Cuts the byte stream of one socket into frames (SPEC §1). Owned by whichever thread reads
    /// the socket: the constructor during the handshake, then the socket reader.
    /// </summary>
    /// <remarks>
    /// Buffer invariant: <c>0 &lt;= start &lt;= end &lt;= buffer.Length</c>; bytes
    /// <c>[start, end)</c> are received and not yet consumed. A frame's declared length is checked
    /// (21 to <c>maxFrame</c>) before the buffer grows for it, so a hostile length allocates
    /// nothing. The buffer grows to fit a large frame and shrinks back once it is consumed.
    /// </remarks>
    internal sealed class FrameReader
    {
        private const int InitialSize = 64 * 1024;
        private const int ShrinkAbove = 1024 * 1024;

        private readonly Socket socket;
        private readonly System.IO.Stream stream;
        private readonly int maxFrame;
        private byte[] buffer = new byte[InitialSize];
        private int start;
        private int end;

        internal FrameReader(Socket socket, int maxFrame) : this(socket, null, maxFrame)
        {
        }

        /// <summary>A reader of <paramref name="stream"/> (TLS over the socket) when it is not
        /// null, else of the socket itself.</summary>
        internal FrameReader(Socket socket, System.IO.Stream stream, int maxFrame)
        {
            this.socket = socket;
            this.stream = stream;
            this.maxFrame = maxFrame;
        }

        internal Socket Socket { get { return socket; } }

        /// <summary>The buffer that <see cref="TryNext"/>'s offsets point into; valid until the
        /// next <see cref="Fill"/>.</summary>
        internal byte[] Buffer { get { return buffer; } }

        /// <summary>Bytes received by the last <see cref="Fill"/>.</summary>
        internal int LastReadBytes { get; private set; }

        /// <summary>
        /// The next complete frame already in the buffer: true with its offset and length, or false
        /// when more bytes are needed. Throws <see cref="MessagingMeshException"/> for a length
        /// below 21 or above the maximum: the stream cannot be resynchronised after that.
        /// </summary>
        internal bool TryNext(out int offset, out int length)
        {
            offset = 0;
            length = 0;
            int available = end - start;
            if (available < 4) return false;
            int declared = Wire.ReadInt32(buffer, start);
            CheckLength(declared);
            if (available < declared) return false;
            offset = start;
            length = declared;
            start += declared;
            return true;
        }

        private void CheckLength(int declared)
        {
            if (declared < Wire.MinFrameSize)
            {
                throw new MessagingMeshException("protocol error: frame length " + declared
                                                 + " is below the minimum of 21 bytes");
            }
            if (declared > maxFrame)
            {
                throw new MessagingMeshException("protocol error: frame length " + declared
                                                 + " exceeds the maximum of " + maxFrame + " bytes");
            }
        }

        /// <summary>
        /// Blocks until more bytes arrive. False when the peer closed the stream; throws
        /// <see cref="SocketException"/> or <see cref="ObjectDisposedException"/> when the socket
        /// fails or is closed under it.
        /// </summary>
        internal bool Fill()
        {
            int available = end - start;
            int needed = available >= 4 ? Wire.ReadInt32(buffer, start) : InitialSize;
            if (available >= 4) CheckLength(needed);
            if (available == 0 && buffer.Length > ShrinkAbove)
            {
                buffer = new byte[InitialSize];
                start = end = 0;
            }
            else if (needed > buffer.Length)
            {
                var bigger = new byte[needed];
                System.Buffer.BlockCopy(buffer, start, bigger, 0, available);
                buffer = bigger;
                start = 0;
                end = available;
            }
            else if (buffer.Length - end < Math.Min(needed - available, 4096) || start == end)
            {
                // Compact: move the partial frame to the front.
                System.Buffer.BlockCopy(buffer, start, buffer, 0, available);
                start = 0;
                end = available;
            }
            int read = stream != null
                ? stream.Read(buffer, end, buffer.Length - end)
                : socket.Receive(buffer, end, buffer.Length - end, SocketFlags.None);
            LastReadBytes = read;
            if (read == 0) return false;
            end += read;
            return true;
        }
    }
}
