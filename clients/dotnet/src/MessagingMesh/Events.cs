using System;
using System.Globalization;

namespace MessagingMesh
{
    /// <summary>The life cycle of a <see cref="Connection"/>.</summary>
    public enum ConnectionState
    {
        /// <summary>Handshaking with the gateway (only inside the constructor).</summary>
        Connecting,
        /// <summary>Connected: frames flow.</summary>
        Connected,
        /// <summary>The gateway was lost; the connection is trying to get it back. Messages
        /// published meanwhile are buffered (up to <see cref="ConnectionParams.MaxOutboundBytes"/>).</summary>
        Reconnecting,
        /// <summary>Disposed, or reconnecting gave up. Nothing can be sent any more.</summary>
        Closed,
    }

    /// <summary>Arguments of <see cref="Connection.Error"/>: something went wrong that did not
    /// stop the connection.</summary>
    public sealed class ConnectionErrorEventArgs : EventArgs
    {
        internal ConnectionErrorEventArgs(MessagingMeshException exception, string subject,
                                          Subscription subscription)
        {
            Exception = exception;
            Subject = subject ?? "";
            Subscription = subscription;
        }

        /// <summary>
        /// What happened: <see cref="GatewayErrorException"/> (an ERROR from the gateway),
        /// <see cref="DecodeException"/> (a message whose body could not be decoded was dropped),
        /// <see cref="PendingLimitException"/> (a subscription started dropping messages), or another
        /// <see cref="MessagingMeshException"/>.
        /// </summary>
        public MessagingMeshException Exception { get; private set; }

        /// <summary>The subject concerned, or "".</summary>
        public string Subject { get; private set; }

        /// <summary>The subscription concerned, or null.</summary>
        public Subscription Subscription { get; private set; }
    }

    /// <summary>Arguments of <see cref="Connection.Disconnected"/>, <see cref="Connection.Reconnected"/>
    /// and <see cref="Connection.Closed"/>.</summary>
    public sealed class ConnectionEventArgs : EventArgs
    {
        internal ConnectionEventArgs(string reason)
        {
            Reason = reason ?? "";
        }

        /// <summary>Why it happened, for people (e.g. "the gateway closed the connection").</summary>
        public string Reason { get; private set; }
    }

    /// <summary>What <see cref="Connection.ProcessMessageQueue(int, int)"/> did.</summary>
    public struct ProcessResult
    {
        internal ProcessResult(int processed, int remaining)
        {
            Processed = processed;
            Remaining = remaining;
        }

        /// <summary>Messages taken from the queue by this call.</summary>
        public int Processed { get; private set; }

        /// <summary>Messages still in the queue when the call returned.</summary>
        public int Remaining { get; private set; }

        /// <summary>"processed=N remaining=M".</summary>
        public override string ToString()
        {
            return "processed=" + Processed + " remaining=" + Remaining;
        }
    }

    /// <summary>Counters of one connection since it was created. A snapshot: read it again for
    /// fresh values.</summary>
    public sealed class ConnectionStatistics
    {
        /// <summary>SEND_MESSAGE frames queued for the gateway (publishes, requests, replies).</summary>
        public long MessagesSent { get; internal set; }
        /// <summary>Bytes written to the socket.</summary>
        public long BytesSent { get; internal set; }
        /// <summary>Socket write calls. Much smaller than <see cref="MessagesSent"/> under load:
        /// frames are coalesced into large writes.</summary>
        public long SocketWrites { get; internal set; }
        /// <summary>Frames received from the gateway.</summary>
        public long FramesReceived { get; internal set; }
        /// <summary>Bytes received from the gateway.</summary>
        public long BytesReceived { get; internal set; }
        /// <summary>Messages dropped because a subscription's pending limit was exceeded.</summary>
        public long MessagesDropped { get; internal set; }
        /// <summary>Messages dropped because their body could not be decoded.</summary>
        public long UndecodableMessages { get; internal set; }
        /// <summary>Successful reconnects.</summary>
        public long Reconnects { get; internal set; }

        /// <summary>
        /// Every counter in one line, for logs, e.g. <c>1200 messages sent (48000 bytes in 12
        /// socket writes), 1300 frames received (52000 bytes), 0 messages dropped at pending
        /// limits, 0 undecodable, 0 reconnects</c>.
        /// </summary>
        public override string ToString()
        {
            return string.Format(CultureInfo.InvariantCulture,
                "{0} messages sent ({1} bytes in {2} socket writes), {3} frames received ({4} bytes), "
                + "{5} messages dropped at pending limits, {6} undecodable, {7} reconnects",
                MessagesSent, BytesSent, SocketWrites, FramesReceived, BytesReceived, MessagesDropped,
                UndecodableMessages, Reconnects);
        }
    }
}
