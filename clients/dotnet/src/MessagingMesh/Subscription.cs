using System;
using System.Threading;

namespace MessagingMesh
{
    /// <summary>
    /// Interest in a subject pattern, created by <see cref="Connection.Subscribe"/>. Messages flow
    /// to its callback until it is disposed (or its connection is). It survives reconnects: the
    /// connection subscribes it again on every new gateway connection.
    /// </summary>
    /// <remarks>
    /// Each subscription has a pending limit: messages received but not yet dispatched (waiting
    /// for the callback thread, or for <see cref="Connection.ProcessMessageQueue(int, int)"/>).
    /// Past it, messages for this subscription are dropped, counted in <see cref="Dropped"/> and
    /// reported once per overflow episode — an episode ends when the subscription's queue has
    /// drained completely — through <see cref="Connection.Error"/>.
    /// </remarks>
    public sealed class Subscription : IDisposable
    {
        private readonly Connection connection;
        private int pendingMessages;
        private long pendingBytes;
        private long dropped;
        private long delivered;
        private int overflowing; // 1 while in an overflow episode (reported once)
        private volatile bool active = true;

        internal Subscription(Connection connection, uint id, string subject,
                              Connection.SubscriptionCallback callback, object tag,
                              int pendingMessageLimit, long pendingByteLimit)
        {
            this.connection = connection;
            Id = id;
            Subject = subject;
            Callback = callback;
            Tag = tag;
            PendingMessageLimit = pendingMessageLimit;
            PendingByteLimit = pendingByteLimit;
        }

        /// <summary>The connection this subscription belongs to.</summary>
        public Connection Connection { get { return connection; } }

        /// <summary>The subscription id on the wire (unique within the connection, never 0).</summary>
        public uint Id { get; private set; }

        /// <summary>The subject pattern subscribed to.</summary>
        public string Subject { get; private set; }

        /// <summary>The tag passed to <see cref="Connection.Subscribe"/>, handed to every callback.</summary>
        public object Tag { get; private set; }

        internal Connection.SubscriptionCallback Callback { get; private set; }

        /// <summary>False once disposed (or once the connection is closed).</summary>
        public bool IsActive { get { return active; } }

        /// <summary>Most messages that may wait for dispatch. Can be changed at any time.</summary>
        public int PendingMessageLimit { get; set; }

        /// <summary>Most bytes (whole frames) that may wait for dispatch. Can be changed at any time.</summary>
        public long PendingByteLimit { get; set; }

        /// <summary>Messages waiting for dispatch now.</summary>
        public int PendingMessages { get { return Volatile.Read(ref pendingMessages); } }

        /// <summary>Bytes waiting for dispatch now.</summary>
        public long PendingBytes { get { return Interlocked.Read(ref pendingBytes); } }

        /// <summary>Messages dropped because the pending limit was exceeded.</summary>
        public long Dropped { get { return Interlocked.Read(ref dropped); } }

        /// <summary>Messages handed to the callback.</summary>
        public long Delivered { get { return Interlocked.Read(ref delivered); } }

        /// <summary>Unsubscribes. Messages already queued for this subscription are discarded.
        /// Safe to call more than once and from inside the subscription's own callback.</summary>
        public void Dispose()
        {
            connection.Unsubscribe(this);
        }

        internal void Deactivate()
        {
            active = false;
        }

        /// <summary>
        /// Called by the socket reader for each arriving message: admits it (true) or drops it
        /// (false). Returns through <paramref name="report"/> whether this drop starts an overflow
        /// episode that must be reported.
        /// </summary>
        internal bool TryAdmit(int frameBytes, out bool report)
        {
            report = false;
            if (Volatile.Read(ref pendingMessages) >= PendingMessageLimit
                || Interlocked.Read(ref pendingBytes) + frameBytes > PendingByteLimit)
            {
                Interlocked.Increment(ref dropped);
                report = Interlocked.Exchange(ref overflowing, 1) == 0;
                return false;
            }
            Interlocked.Increment(ref pendingMessages);
            Interlocked.Add(ref pendingBytes, frameBytes);
            return true;
        }

        /// <summary>Called by the dispatcher when a message leaves the queue.</summary>
        internal void Dequeued(int frameBytes)
        {
            Interlocked.Add(ref pendingBytes, -frameBytes);
            if (Interlocked.Decrement(ref pendingMessages) == 0)
            {
                Volatile.Write(ref overflowing, 0);
            }
        }

        internal void CountDelivered()
        {
            Interlocked.Increment(ref delivered);
        }

        /// <summary>Describes the subscription, e.g. <c>Subscription 3 "PRICES.>"</c>.</summary>
        public override string ToString()
        {
            return "Subscription " + Id + " \"" + Subject + "\"";
        }
    }
}
