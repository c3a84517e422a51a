using System;
using System.Collections.Generic;
using System.Globalization;
using System.Net.Sockets;
using System.Threading;
using System.Threading.Tasks;

namespace MessagingMesh
{
    /// <summary>
    /// A client connection to a Messaging Mesh gateway: publish, subscribe, request/reply, flush.
    /// Safe to use from several threads at once.
    /// </summary>
    /// <remarks>
    /// <para><b>Threads.</b> Each connection runs up to four library threads, none of which ever
    /// spins:</para>
    /// <list type="number">
    /// <item>The <b>socket reader</b> blocks in <c>Socket.Receive</c>, cuts frames, completes
    /// request replies and flushes directly, answers PINGs, and queues subscription messages for
    /// dispatch. It never runs application code and never waits for it; it also drives
    /// reconnection.</item>
    /// <item>The <b>socket writer</b> sleeps until frames are queued, then takes everything
    /// queued so far and writes it with one <c>Socket.Send</c>. Publishers only append to a buffer
    /// under a lock, so many small messages leave in few large writes. The writer also sends
    /// heartbeat PINGs and notices a silent gateway.</item>
    /// <item>The <b>dispatcher</b> (<see cref="DispatchMode.CallbackThread"/> only) runs
    /// subscription callbacks in arrival order. In <see cref="DispatchMode.Queue"/> mode the
    /// application runs them by calling <see cref="ProcessMessageQueue(int, int)"/>.</item>
    /// <item>The <b>event thread</b> raises <see cref="Error"/>, <see cref="Disconnected"/>,
    /// <see cref="Reconnected"/> and <see cref="Closed"/>.</item>
    /// </list>
    /// <para>Because replies are completed by the reader, <see cref="SendRequest(string, Message, int)"/>
    /// works from inside a subscription callback, in both dispatch modes.</para>
    /// <para><b>Protocol.</b> The connection asks for MM/2 and falls back to MM/1 when the gateway
    /// answers with an empty ACK (<see cref="ProtocolVersion"/> says which). MM/1 has no
    /// heartbeats, no NO_RESPONDERS and no PING: <see cref="Flush()"/> then publishes to the
    /// connection's own inbox and waits for that message to come back.</para>
    /// <para><b>Reconnection.</b> When the gateway is lost (end of stream, socket error, protocol
    /// error, or silence for twice the gateway's heartbeat interval) the connection raises
    /// <see cref="Disconnected"/>, reconnects with exponential backoff, subscribes every live
    /// subscription again, and raises <see cref="Reconnected"/>. Frames not yet written when the
    /// gateway was lost are dropped (delivery is at most once); messages published while
    /// reconnecting are buffered and sent after the subscriptions. Requests in flight keep waiting
    /// (the inbox keeps its name across reconnects, so a reply sent after the reconnect still
    /// arrives); flushes in flight fail at once, since their PONG can no longer come.</para>
    /// <para><b>Where things are.</b> This file: state and the public surface.
    /// <c>Connection.Sending.cs</c>: the outbound buffer, requests, the inbox, flush.
    /// <c>Connection.Handshake.cs</c>: opening the socket, CONNECT and ACK.
    /// <c>Connection.Writer.cs</c> and <c>Connection.Reader.cs</c>: the two socket threads.
    /// <c>Connection.Lifecycle.cs</c>: losing the gateway, reconnecting, closing.
    /// <c>Connection.Dispatch.cs</c>: running callbacks.</para>
    /// </remarks>
    public sealed partial class Connection : IDisposable
    {
        /// <summary>
        /// Receives the messages of a subscription.
        /// </summary>
        /// <param name="connection">The connection the message arrived on.</param>
        /// <param name="subject">The subject the message was published to.</param>
        /// <param name="replySubject">Where to send a reply (with <see cref="SendReply"/>), or ""
        /// when the sender expects none.</param>
        /// <param name="message">The message. It belongs to the callback.</param>
        /// <param name="tag">The tag given to <see cref="Subscribe"/>.</param>
        public delegate void SubscriptionCallback(Connection connection, string subject,
                                                  string replySubject, Message message, object tag);

        /// <summary>The library's name and version, sent as <c>client_name</c> in CONNECT.</summary>
        public const string LibraryName = "dotnet 0.1.0";

        private const int InitialOutboundCapacity = 64 * 1024;

        /// <summary>Outbound buffers larger than this are replaced by small ones once written, so a
        /// burst does not pin memory for the life of the connection.</summary>
        private const int OutboundShrinkAbove = 4 * 1024 * 1024;

        private readonly ConnectionParams parameters;

        // ----- guarded by writeLock: outbound frames, connection state, subscriptions, flushes -----

        /// <summary>
        /// The one lock for everything that must change together with the outbound byte stream:
        /// the pending buffer, the socket and state, the subscription table and the flush waiters.
        /// Holding one lock for all of it makes "subscribe" and "resubscribe after reconnect"
        /// trivially consistent. Never held during a socket write.
        /// </summary>
        private readonly object writeLock = new object();

        /// <summary>Frames waiting for the writer. Invariant: holds whole frames only.</summary>
        private WireWriter pending = new WireWriter(InitialOutboundCapacity);

        /// <summary>The buffer the writer hands back after writing; null while it is writing.</summary>
        private WireWriter spare = new WireWriter(InitialOutboundCapacity);

        private Socket socket;
        private ConnectionState state = ConnectionState.Connecting;
        private bool closing;
        private bool writerWaiting;
        private int publishersWaiting;
        private long lastSendMs;
        private int protocolVersion;
        private string gatewayName = "";
        private int gatewayMaxFrame = Wire.DefaultMaxFrame;
        private int gatewayHeartbeatMs;
        private uint lastSubscriptionId;

        /// <summary>Copy-on-write: replaced, never modified, so the reader looks up without a lock.</summary>
        private volatile Dictionary<uint, Subscription> subscriptions = new Dictionary<uint, Subscription>();

        private uint inboxSubscriptionId;
        /// <summary>Whether a mesh-wide flush has confirmed the inbox subscription since the last
        /// (re)connect, so replies from anywhere in the mesh can reach it.</summary>
        private bool inboxConfirmed;
        private PendingReply inboxConfirmation;
        private readonly Dictionary<long, PendingReply> flushes = new Dictionary<long, PendingReply>();
        private long lastFlushId;

        // Statistics written under writeLock.
        private long messagesSent;
        private long bytesSent;
        private long socketWrites;

        // ----- requests: guarded by requestsLock -----

        private readonly object requestsLock = new object();
        private readonly Dictionary<long, PendingReply> requests = new Dictionary<long, PendingReply>();
        private long lastRequestId;

        /// <summary>"_INBOX.&lt;22 random base62 characters&gt;." — the same for the life of the
        /// connection, across reconnects, so a reply sent during a reconnect can still arrive.</summary>
        // The inbox prefix in use: the library's own, or the one the gateway assigned to the
        // session (services with security on, docs/security.md). Written under writeLock.
        private volatile string inboxPrefix;
        private readonly string ownInboxPrefix;
        // The TLS stream over the socket, when the connection uses TLS (else null).
        private System.IO.Stream tlsStream;

        // ----- socket reader state -----

        private FrameReader frameReader;
        private long lastReceiveMs;
        /// <summary>Why <see cref="abortedSocket"/> was shut down by the library (silence, a
        /// failed write), for the Disconnected event; guarded by itself.</summary>
        private string abortReason;
        private Socket abortedSocket;
        private readonly object abortLock = new object();
        private long framesReceived;
        private long bytesReceived;
        private long messagesDropped;
        private long undecodable;
        private long reconnects;
        private readonly List<Delivery> batch = new List<Delivery>();
        private readonly SubjectCache subjectCache = new SubjectCache();

        // ----- dispatch: guarded by the queue itself -----

        private readonly Queue<Delivery> queue = new Queue<Delivery>();
        /// <summary>Set under the queue's lock; read without it by the dispatcher between messages.</summary>
        private volatile bool queueClosed;

        private readonly ManualResetEvent closedSignal = new ManualResetEvent(false);
        private readonly NotificationQueue notifications;
        private readonly Thread readerThread;
        private readonly Thread writerThread;
        private readonly Thread dispatchThread;

        /// <summary>A validated subject, remembered so that publishing to the same string again
        /// skips validation. A benign race: the field holds one reference at a time.</summary>
        private volatile string lastValidSubject;

        /// <summary>
        /// Connects to the gateway and completes the handshake before returning: when the
        /// constructor returns, the gateway has attached the connection to its service.
        /// </summary>
        /// <exception cref="ConnectionClosedException">The gateway could not be reached or refused
        /// the connection.</exception>
        /// <exception cref="MeshTimeoutException">The gateway did not answer CONNECT in time.</exception>
        /// <exception cref="InvalidSubjectException">The service name is invalid.</exception>
        public Connection(ConnectionParams connectionParams)
        {
            if (connectionParams == null) throw new ArgumentNullException("connectionParams");
            parameters = connectionParams.Copy();
            parameters.Validate();
            ownInboxPrefix = "_INBOX." + InboxToken.Create() + ".";
            inboxPrefix = ownInboxPrefix;

            var handshake = OpenAndHandshake();
            Adopt(handshake);
            state = ConnectionState.Connected;
            lastSendMs = Clock.NowMs;
            Logger.Info("connected to gateway " + Describe());

            string name = "MessagingMesh " + parameters.Service;
            notifications = new NotificationQueue(name + " events");
            readerThread = StartThread(ReaderLoop, name + " reader");
            writerThread = StartThread(WriterLoop, name + " writer");
            if (parameters.DispatchMode == DispatchMode.CallbackThread)
            {
                dispatchThread = StartThread(DispatchLoop, name + " dispatcher");
            }
        }

        private static Thread StartThread(ThreadStart body, string name)
        {
            var thread = new Thread(body);
            thread.IsBackground = true;
            thread.Name = name;
            thread.Start();
            return thread;
        }

        // =====================================================================================
        // Public surface
        // =====================================================================================

        /// <summary>
        /// Raised when something went wrong that did not stop the connection: an ERROR from the
        /// gateway, a received message that could not be decoded (dropped), a subscription that
        /// started dropping messages at its pending limit. Raised on the connection's event thread.
        /// </summary>
        public event EventHandler<ConnectionErrorEventArgs> Error;

        /// <summary>Raised (on the event thread) when the gateway is lost.</summary>
        public event EventHandler<ConnectionEventArgs> Disconnected;

        /// <summary>Raised (on the event thread) after reconnecting and resubscribing.</summary>
        public event EventHandler<ConnectionEventArgs> Reconnected;

        /// <summary>Raised (on the event thread) once, when the connection is closed for good.</summary>
        public event EventHandler<ConnectionEventArgs> Closed;

        /// <summary>The service this connection joined.</summary>
        public string Service { get { return parameters.Service; } }

        /// <summary>The dispatch mode chosen in <see cref="ConnectionParams"/>.</summary>
        public DispatchMode DispatchMode { get { return parameters.DispatchMode; } }

        /// <summary>The current state.</summary>
        public ConnectionState State { get { lock (writeLock) return state; } }

        /// <summary>Whether frames flow to a gateway right now.</summary>
        public bool IsConnected { get { return State == ConnectionState.Connected; } }

        /// <summary>2 when the gateway speaks MM/2, 1 for an MM/1 gateway (or when MM/1 was asked for).</summary>
        public int ProtocolVersion { get { lock (writeLock) return protocolVersion; } }

        /// <summary>The gateway's name from its MM/2 ACK, or "" for MM/1.</summary>
        public string GatewayName { get { lock (writeLock) return gatewayName; } }

        /// <summary>The largest frame the gateway accepts (from its ACK; 64 MiB for MM/1).</summary>
        public int GatewayMaxFrame { get { lock (writeLock) return gatewayMaxFrame; } }

        /// <summary>The gateway's heartbeat interval from its ACK, or 0 (MM/1, or none).</summary>
        public int GatewayHeartbeatMs { get { lock (writeLock) return gatewayHeartbeatMs; } }

        /// <summary>The prefix of this connection's reply subjects, <c>_INBOX.&lt;token&gt;.</c>.</summary>
        public string InboxPrefix { get { return inboxPrefix; } }

        /// <summary>Bytes waiting in the outbound buffer (for tests of back-pressure).</summary>
        internal int PendingOutboundBytes { get { lock (writeLock) return pending.Length; } }

        /// <summary>Messages waiting in the dispatch queue.</summary>
        public int QueuedMessages { get { lock (queue) return queue.Count; } }

        /// <summary>A snapshot of the connection's counters.</summary>
        public ConnectionStatistics Statistics
        {
            get
            {
                var statistics = new ConnectionStatistics();
                lock (writeLock)
                {
                    statistics.MessagesSent = messagesSent;
                    statistics.BytesSent = bytesSent;
                    statistics.SocketWrites = socketWrites;
                }
                statistics.FramesReceived = Interlocked.Read(ref framesReceived);
                statistics.BytesReceived = Interlocked.Read(ref bytesReceived);
                statistics.MessagesDropped = Interlocked.Read(ref messagesDropped);
                statistics.UndecodableMessages = Interlocked.Read(ref undecodable);
                statistics.Reconnects = Interlocked.Read(ref reconnects);
                return statistics;
            }
        }

        /// <summary>
        /// Publishes <paramref name="message"/> to <paramref name="subject"/>. Returns once the
        /// frame is queued for the socket writer (it waits only when the outbound buffer is full).
        /// </summary>
        /// <param name="subject">A literal subject (no wildcards).</param>
        /// <param name="message">The message; it is encoded before this call returns.</param>
        /// <param name="replySubject">Optional subject for replies; null or "" for none.</param>
        /// <exception cref="InvalidSubjectException">A subject is invalid, or a plain publish (no
        /// reply subject) targets the gateway's reserved <c>_MM.</c> subjects.</exception>
        /// <exception cref="EncodeException">The message is nested too deeply or is larger than
        /// the gateway's maximum frame.</exception>
        /// <exception cref="NotConnectedException">Reconnecting, and the buffer is full.</exception>
        /// <exception cref="ConnectionClosedException">The connection is closed.</exception>
        public void SendMessage(string subject, Message message, string replySubject = null)
        {
            if (message == null) throw new ArgumentNullException("message");
            CheckPublishSubject(subject);
            if (string.IsNullOrEmpty(replySubject))
            {
                if (IsGatewaySubject(subject))
                {
                    throw InvalidSubjectException.Reserved(subject);
                }
            }
            else
            {
                Subject.ValidateReplySubject(replySubject);
            }
            Enqueue(0, subject, replySubject, WireAction.SendMessage, message);
        }

        /// <summary>
        /// Sends <paramref name="reply"/> to the reply subject of a request (the
        /// <c>replySubject</c> a subscription callback received).
        /// </summary>
        /// <exception cref="ArgumentException">The reply subject is empty: the sender expects no reply.</exception>
        public void SendReply(string replySubject, Message reply)
        {
            if (string.IsNullOrEmpty(replySubject))
            {
                throw new ArgumentException("the message has no reply subject; nothing to reply to",
                                            "replySubject");
            }
            if (reply == null) throw new ArgumentNullException("reply");
            CheckPublishSubject(replySubject);
            Enqueue(0, replySubject, null, WireAction.SendMessage, reply);
        }

        /// <summary>Sends a request and waits for the reply, with the default timeout
        /// (<see cref="ConnectionParams.RequestTimeoutMs"/>).</summary>
        public Message SendRequest(string subject, Message message)
        {
            return SendRequest(subject, message, parameters.RequestTimeoutMs);
        }

        /// <summary>Sends a request and waits up to <paramref name="timeout"/> for the reply.</summary>
        public Message SendRequest(string subject, Message message, TimeSpan timeout)
        {
            return SendRequest(subject, message, ToMilliseconds(timeout));
        }

        /// <summary>
        /// Sends a request and waits for the reply. The request travels with a reply subject
        /// <c>_INBOX.&lt;token&gt;.&lt;n&gt;</c> under the connection's single inbox subscription; no
        /// SUBSCRIBE is sent per request. Works from inside a subscription callback.
        /// </summary>
        /// <exception cref="MeshTimeoutException">No reply within the timeout.</exception>
        /// <exception cref="NoRespondersException">MM/2: nobody subscribes to the subject.</exception>
        /// <exception cref="ConnectionClosedException">The connection closed while waiting.</exception>
        public Message SendRequest(string subject, Message message, int timeoutMilliseconds)
        {
            if (message == null) throw new ArgumentNullException("message");
            CheckTimeout(timeoutMilliseconds);
            CheckPublishSubject(subject);
            long deadline = Clock.NowMs + timeoutMilliseconds;
            ConfirmInbox(deadline, subject);
            var pendingReply = StartRequest(subject, message);
            Message reply;
            if (!pendingReply.Wait(deadline, out reply))
            {
                lock (requestsLock) requests.Remove(pendingReply.Id);
                throw new MeshTimeoutException("no reply to `" + subject + "` within "
                                               + Clock.Describe(timeoutMilliseconds));
            }
            return reply;
        }

        /// <summary>
        /// Sends a request; the task completes with the reply, or fails with
        /// <see cref="MeshTimeoutException"/>, <see cref="NoRespondersException"/> or
        /// <see cref="ConnectionClosedException"/>. Continuations never run on the socket reader.
        /// </summary>
        public Task<Message> SendRequestAsync(string subject, Message message, int timeoutMilliseconds)
        {
            if (message == null) throw new ArgumentNullException("message");
            CheckTimeout(timeoutMilliseconds);
            CheckPublishSubject(subject);
            long deadline = Clock.NowMs + timeoutMilliseconds;
            var confirmation = BeginConfirmInbox();
            if (confirmation == null || confirmation.IsDone)
            {
                return RequestTask(subject, message, deadline, timeoutMilliseconds);
            }
            // The first request after (re)connecting waits for the inbox to be live mesh-wide,
            // within the request's own timeout.
            var confirmed = confirmation.AsTask();
            return Task.WhenAny(confirmed, Task.Delay(Clock.Remaining(deadline))).ContinueWith(first =>
            {
                if (first.Result != confirmed)
                {
                    return Failed(new MeshTimeoutException("no reply to `" + subject
                                                           + "`: the inbox was not confirmed in time"));
                }
                if (confirmed.IsFaulted && confirmed.Exception.InnerException is ConnectionClosedException)
                {
                    return Failed(confirmed.Exception.InnerException);
                }
                // Confirmed, or the connection was lost meanwhile: the request goes out after the
                // inbox is subscribed again.
                return RequestTask(subject, message, deadline, timeoutMilliseconds);
            }, TaskContinuationOptions.ExecuteSynchronously).Unwrap();
        }

        private static Task<Message> Failed(Exception exception)
        {
            var failed = new TaskCompletionSource<Message>();
            failed.SetException(exception);
            return failed.Task;
        }

        private Task<Message> RequestTask(string subject, Message message, long deadline, int timeoutMs)
        {
            PendingReply pendingReply;
            try
            {
                pendingReply = StartRequest(subject, message);
            }
            catch (Exception exception)
            {
                return Failed(exception);
            }
            var task = pendingReply.AsTask();
            int left = Clock.Remaining(deadline);
            var cancel = new CancellationTokenSource();
            Task.Delay(left, cancel.Token).ContinueWith(delay =>
            {
                if (delay.IsCanceled) return;
                lock (requestsLock) requests.Remove(pendingReply.Id);
                pendingReply.Complete(null, new MeshTimeoutException(
                    "no reply to `" + subject + "` within " + Clock.Describe(timeoutMs)));
            }, TaskContinuationOptions.ExecuteSynchronously);
            task.ContinueWith(done => cancel.Cancel(), TaskContinuationOptions.ExecuteSynchronously);
            return task;
        }

        /// <summary>
        /// Subscribes to <paramref name="pattern"/>. Messages go to <paramref name="callback"/>
        /// (on the dispatcher thread, or from <see cref="ProcessMessageQueue(int, int)"/>) until the
        /// returned subscription is disposed. To know that the subscription is live at the gateway
        /// (or across the mesh) before publishing elsewhere, call <see cref="Flush()"/> (or
        /// <see cref="Flush(int, bool)"/> with <c>meshWide</c>) afterwards.
        /// </summary>
        /// <param name="pattern">A subject pattern; <c>*</c> matches one token, a final <c>&gt;</c>
        /// one or more.</param>
        /// <param name="callback">Receives the messages.</param>
        /// <param name="tag">Anything; handed to every callback.</param>
        public Subscription Subscribe(string pattern, SubscriptionCallback callback, object tag = null)
        {
            Subject.ValidatePattern(pattern);
            if (callback == null) throw new ArgumentNullException("callback");
            lock (writeLock)
            {
                ThrowIfClosed();
                uint id = ++lastSubscriptionId;
                var subscription = new Subscription(this, id, pattern, callback, tag,
                                                    parameters.PendingMessageLimit,
                                                    parameters.PendingByteLimit);
                var table = new Dictionary<uint, Subscription>(subscriptions);
                table.Add(id, subscription);
                subscriptions = table;
                if (state == ConnectionState.Connected)
                {
                    pending.WriteFrame(id, pattern, null, WireAction.Subscribe, null);
                    WakeWriter();
                }
                return subscription;
            }
        }

        internal void Unsubscribe(Subscription subscription)
        {
            lock (writeLock)
            {
                subscription.Deactivate();
                if (!subscriptions.ContainsKey(subscription.Id)) return;
                var table = new Dictionary<uint, Subscription>(subscriptions);
                table.Remove(subscription.Id);
                subscriptions = table;
                // By id, with an empty subject (as MM/1 clients send it): an id the gateway does
                // not know then removes nothing, rather than some other subscription on the same
                // pattern.
                if (state == ConnectionState.Connected && !closing)
                {
                    pending.WriteFrame(subscription.Id, null, null, WireAction.Unsubscribe, null);
                    WakeWriter();
                }
            }
        }

        /// <summary>Flushes with the default timeout (<see cref="ConnectionParams.RequestTimeoutMs"/>).</summary>
        public void Flush()
        {
            Flush(parameters.RequestTimeoutMs, false);
        }

        /// <summary>
        /// Waits until the gateway has processed everything this connection sent before the call
        /// (subscriptions included). With <paramref name="meshWide"/>, also waits until every mesh
        /// link of the gateway has confirmed the interest changes those frames caused: from then on
        /// a publish anywhere in the mesh reaches this connection's subscriptions.
        /// </summary>
        /// <remarks>When it returns, messages the gateway delivered to this connection before
        /// confirming are already in the dispatch queue (see <see cref="QueuedMessages"/>).
        /// MM/2 sends a PING (body <c>{mesh: true}</c> for the mesh-wide form) and waits for
        /// its PONG. On an MM/1 gateway, which has no PING, it publishes to the connection's own
        /// inbox and waits for that message to come back; <paramref name="meshWide"/> then has no
        /// stronger meaning.</remarks>
        /// <exception cref="MeshTimeoutException">Not confirmed within the timeout.</exception>
        /// <exception cref="MessagingMeshException">The gateway was lost before confirming (the
        /// connection reconnects; flush again).</exception>
        /// <exception cref="ConnectionClosedException">The connection is closed.</exception>
        public void Flush(int timeoutMilliseconds, bool meshWide = false)
        {
            CheckTimeout(timeoutMilliseconds);
            long deadline = Clock.NowMs + timeoutMilliseconds;
            PendingReply waiter;
            Message ignored;
            if (ProtocolVersion >= 2)
            {
                waiter = StartFlush(meshWide);
                if (waiter.Wait(deadline, out ignored)) return;
                lock (writeLock) flushes.Remove(waiter.Id);
            }
            else
            {
                EnsureInboxSubscribed();
                long id;
                waiter = RegisterRequest(inboxPrefix, out id);
                try
                {
                    Enqueue(0, inboxPrefix + id.ToString(CultureInfo.InvariantCulture), null,
                            WireAction.SendMessage, new Message());
                }
                catch
                {
                    lock (requestsLock) requests.Remove(id);
                    throw;
                }
                if (waiter.Wait(deadline, out ignored)) return;
                lock (requestsLock) requests.Remove(id);
            }
            throw new MeshTimeoutException("flush not confirmed by the gateway within "
                                           + timeoutMilliseconds + " ms");
        }

        /// <summary>
        /// <see cref="DispatchMode.Queue"/> mode: waits up to <paramref name="timeoutMilliseconds"/>
        /// for messages (0: do not wait; -1: wait indefinitely), then runs the callbacks of up to
        /// <paramref name="maxMessages"/> of them on the calling thread, in arrival order.
        /// </summary>
        /// <returns>How many messages were taken from the queue (a message whose subscription was
        /// disposed meanwhile, or whose body could not be decoded, counts but runs no callback),
        /// and how many remain.</returns>
        /// <exception cref="InvalidOperationException">The connection uses a callback thread.</exception>
        /// <exception cref="ConnectionClosedException">The connection is closed.</exception>
        public ProcessResult ProcessMessageQueue(int timeoutMilliseconds, int maxMessages = int.MaxValue)
        {
            if (parameters.DispatchMode != DispatchMode.Queue)
            {
                throw new InvalidOperationException(
                    "ProcessMessageQueue needs DispatchMode.Queue; this connection dispatches on its own thread");
            }
            if (maxMessages <= 0) throw new ArgumentOutOfRangeException("maxMessages");
            if (timeoutMilliseconds < -1) throw new ArgumentOutOfRangeException("timeoutMilliseconds");
            long deadline = timeoutMilliseconds < 0 ? long.MaxValue : Clock.NowMs + timeoutMilliseconds;
            Delivery[] taken;
            int remaining;
            lock (queue)
            {
                while (queue.Count == 0)
                {
                    if (queueClosed) throw new ConnectionClosedException("the connection is closed");
                    if (deadline == long.MaxValue)
                    {
                        Monitor.Wait(queue);
                        continue;
                    }
                    int left = Clock.Remaining(deadline);
                    if (left == 0) return new ProcessResult(0, 0);
                    Monitor.Wait(queue, left);
                }
                int count = Math.Min(maxMessages, queue.Count);
                taken = new Delivery[count];
                for (int i = 0; i < count; i++) taken[i] = queue.Dequeue();
                remaining = queue.Count;
            }
            foreach (var delivery in taken) Deliver(delivery);
            lock (queue) remaining = queue.Count;
            return new ProcessResult(taken.Length, remaining);
        }

        /// <summary>
        /// Closes the connection: sends DISCONNECT after everything already queued (waiting up to
        /// <see cref="ConnectionParams.CloseTimeoutMs"/> for the writer), stops the library threads,
        /// fails outstanding requests with <see cref="ConnectionClosedException"/>, and raises
        /// <see cref="Closed"/>. Safe to call more than once, and from inside a callback.
        /// </summary>
        public void Dispose()
        {
            Close("closed by the application", true);
        }

        /// <summary>Describes the connection, e.g. <c>Connection DEFAULT @ localhost:5050 (MM/2, Connected)</c>.</summary>
        public override string ToString()
        {
            lock (writeLock) return "Connection " + parameters.Service + " @ " + Describe() + " (MM/"
                                    + protocolVersion + ", " + state + ")";
        }
    }
}
