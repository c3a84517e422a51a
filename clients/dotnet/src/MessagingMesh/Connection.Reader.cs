using System;
using System.Globalization;
using System.Net.Sockets;
using System.Threading;

namespace MessagingMesh
{
    // The socket reader thread: frames in, replies completed, messages queued for dispatch.
    public sealed partial class Connection
    {
        /// <summary>A subscription message waiting for dispatch: the whole frame, copied out of
        /// the read buffer, with its parsed header. The body is decoded at dispatch time, off the
        /// reader's thread.</summary>
        private struct Delivery
        {
            internal Subscription Subscription;
            internal FrameHeader Header;
            internal byte[] Frame;
        }

        private void ReaderLoop()
        {
            while (true)
            {
                Socket current;
                FrameReader reader;
                lock (writeLock)
                {
                    if (closing) break;
                    current = socket;
                    reader = frameReader;
                }
                string reason = ReadUntilLost(reader);
                if (closing) break;
                lock (abortLock)
                {
                    // The first reason recorded for this socket wins over what the read saw.
                    if (abortedSocket == current && abortReason != null) reason = abortReason;
                }
                if (!ConnectionLost(current, reason)) break;
                if (!parameters.Reconnect || !Reconnect())
                {
                    Close(parameters.Reconnect ? "gave up reconnecting: " + reason : reason, false);
                    break;
                }
            }
        }

        /// <summary>Reads and handles frames until the connection fails; returns why.</summary>
        private string ReadUntilLost(FrameReader reader)
        {
            try
            {
                while (true)
                {
                    int offset;
                    int length;
                    while (reader.TryNext(out offset, out length))
                    {
                        Interlocked.Increment(ref framesReceived);
                        HandleFrame(reader.Buffer, offset, length);
                    }
                    // About to block: hand the messages of this read to the dispatcher at once.
                    PublishBatch();
                    if (!reader.Fill()) return "the gateway closed the connection";
                    Interlocked.Add(ref bytesReceived, reader.LastReadBytes);
                    Interlocked.Exchange(ref lastReceiveMs, Clock.NowMs);
                }
            }
            catch (SocketException exception)
            {
                return "socket error: " + exception.Message;
            }
            catch (ObjectDisposedException)
            {
                return "the socket was closed";
            }
            catch (System.IO.IOException exception)
            {
                // TLS: the stream reports socket errors (and a closed socket) this way.
                return "connection error: " + exception.Message;
            }
            catch (MessagingMeshException exception)
            {
                // Frame length out of range or a header that cannot be parsed: the stream cannot be
                // resynchronised, so the connection is dropped (and reconnected).
                Logger.Warning(exception.Message);
                return exception.Message;
            }
            catch (Exception exception)
            {
                // Not expected: logged in full, and handled like a broken connection rather than
                // left to end the application's process as an unhandled exception on this thread.
                Logger.Error("socket reader failed: " + exception);
                return "internal error: " + exception.Message;
            }
            finally
            {
                PublishBatch();
            }
        }

        private void HandleFrame(byte[] buffer, int offset, int length)
        {
            FrameHeader header;
            try
            {
                header = FrameHeader.Parse(buffer, offset, length, subjectCache);
            }
            catch (DecodeException exception)
            {
                throw new MessagingMeshException("protocol error: bad frame header: " + exception.Message, exception);
            }
            switch (header.Action)
            {
                case WireAction.SendMessage:
                    HandleMessage(header, buffer, offset, length);
                    break;
                case WireAction.Ping:
                    // Echo the body back untouched.
                    lock (writeLock)
                    {
                        if (state == ConnectionState.Connected && !closing)
                        {
                            pending.WriteFrameRawBody(WireAction.Pong, buffer, offset + header.BodyOffset,
                                                      length - header.BodyOffset);
                            WakeWriter();
                        }
                    }
                    break;
                case WireAction.Pong:
                    HandlePong(header, buffer, offset, length);
                    break;
                case WireAction.NoResponders:
                    HandleNoResponders(header);
                    break;
                case WireAction.Error:
                    var error = ReadError(header, buffer, offset, length);
                    Logger.Warning(error.Message);
                    Subscription concerned;
                    subscriptions.TryGetValue(header.SubscriptionId, out concerned);
                    Report(error, header.Subject, concerned);
                    break;
                default:
                    Logger.Debug("ignoring a frame with action " + (int)header.Action);
                    break;
            }
        }

        private void HandleMessage(FrameHeader header, byte[] buffer, int offset, int length)
        {
            uint id = header.SubscriptionId;
            if (id != 0 && id == Volatile.Read(ref inboxSubscriptionId))
            {
                HandleReply(header, buffer, offset, length);
                return;
            }
            Subscription subscription;
            if (!subscriptions.TryGetValue(id, out subscription))
            {
                // Unsubscribed while the message was on its way.
                return;
            }
            if (!header.SubjectsAreUtf8)
            {
                Interlocked.Increment(ref undecodable);
                Report(new MessagingMeshException("dropped a message whose subject is not valid UTF-8"),
                       header.Subject, subscription);
                return;
            }
            bool report;
            if (!subscription.TryAdmit(length, out report))
            {
                Interlocked.Increment(ref messagesDropped);
                if (report)
                {
                    var exception = new PendingLimitException(subscription);
                    Logger.Warning(exception.Message);
                    Report(exception, header.Subject, subscription);
                    AdviseMessagesDropped(subscription);
                }
                return;
            }
            var frame = new byte[length];
            Buffer.BlockCopy(buffer, offset, frame, 0, length);
            batch.Add(new Delivery { Subscription = subscription, Header = header, Frame = frame });
        }

        private void HandleReply(FrameHeader header, byte[] buffer, int offset, int length)
        {
            // Whoever waits for this reply may look at the dispatch queue next: queue the
            // messages that arrived before the reply first.
            PublishBatch();
            long id;
            if (!TryParseInboxId(header.Subject, out id)) return;
            PendingReply pendingReply;
            lock (requestsLock)
            {
                if (!requests.TryGetValue(id, out pendingReply)) return; // late: timed out already
                requests.Remove(id);
            }
            try
            {
                pendingReply.Complete(header.DecodeBody(buffer, offset, length), null);
            }
            catch (DecodeException exception)
            {
                Interlocked.Increment(ref undecodable);
                Report(exception, header.Subject, null);
                pendingReply.Complete(null, exception);
            }
        }

        private bool TryParseInboxId(string subject, out long id)
        {
            id = 0;
            if (!subject.StartsWith(inboxPrefix, StringComparison.Ordinal)) return false;
            return long.TryParse(subject.Substring(inboxPrefix.Length), NumberStyles.None,
                                 CultureInfo.InvariantCulture, out id);
        }

        private void HandleNoResponders(FrameHeader header)
        {
            long id;
            if (!TryParseInboxId(header.Subject, out id))
            {
                Logger.Debug("NO_RESPONDERS for a reply subject that is not ours: " + header.Subject);
                return;
            }
            PendingReply pendingReply;
            lock (requestsLock)
            {
                if (!requests.TryGetValue(id, out pendingReply)) return;
                requests.Remove(id);
            }
            pendingReply.Complete(null, new NoRespondersException(
                header.ReplySubject.Length > 0 ? header.ReplySubject : pendingReply.Subject));
        }

        private void HandlePong(FrameHeader header, byte[] buffer, int offset, int length)
        {
            // A flush returns only once the messages that arrived before its PONG are queued.
            PublishBatch();
            Message body;
            try
            {
                body = header.DecodeBody(buffer, offset, length);
            }
            catch (DecodeException)
            {
                return;
            }
            long id;
            PendingReply waiter = null;
            lock (writeLock)
            {
                if (body.TryGetInt64("flush", out id))
                {
                    if (flushes.TryGetValue(id, out waiter)) flushes.Remove(id);
                }
                else
                {
                    bool mesh;
                    if (!body.TryGetBool("mesh", out mesh) || !mesh) return; // a heartbeat PONG
                    // A gateway that answers a mesh flush without echoing our id: complete the
                    // oldest mesh-wide flush.
                    long oldest = long.MaxValue;
                    foreach (var entry in flushes)
                    {
                        if (entry.Value.MeshFlush && entry.Key < oldest) oldest = entry.Key;
                    }
                    if (oldest != long.MaxValue)
                    {
                        waiter = flushes[oldest];
                        flushes.Remove(oldest);
                    }
                }
                if (waiter != null && ReferenceEquals(waiter, inboxConfirmation)) inboxConfirmed = true;
            }
            if (waiter != null) waiter.Complete(null, null);
        }

        private void PublishBatch()
        {
            if (batch.Count == 0) return;
            lock (queue)
            {
                foreach (var delivery in batch) queue.Enqueue(delivery);
                Monitor.PulseAll(queue);
            }
            batch.Clear();
        }

        private void Report(MessagingMeshException exception, string subject, Subscription subscription)
        {
            var handlers = Error;
            if (handlers == null) return;
            var arguments = new ConnectionErrorEventArgs(exception, subject, subscription);
            notifications.Post(() => handlers(this, arguments));
        }
    }
}
