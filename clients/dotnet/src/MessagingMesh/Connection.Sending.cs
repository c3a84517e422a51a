using System;
using System.Globalization;
using System.Threading;

namespace MessagingMesh
{
    // Publishing, requests and flushes: how frames get into the outbound buffer.
    public sealed partial class Connection
    {
        private void CheckPublishSubject(string subject)
        {
            if (subject == null) throw new ArgumentNullException("subject");
            if (ReferenceEquals(subject, lastValidSubject)) return;
            Subject.ValidateSubject(subject);
            lastValidSubject = subject;
        }

        private static bool IsGatewaySubject(string subject)
        {
            return subject.StartsWith("_MM.", StringComparison.Ordinal);
        }

        private static void CheckTimeout(int timeoutMilliseconds)
        {
            if (timeoutMilliseconds <= 0)
            {
                throw new ArgumentOutOfRangeException("timeoutMilliseconds", "the timeout must be positive");
            }
        }

        private static int ToMilliseconds(TimeSpan timeout)
        {
            double ms = Math.Ceiling(timeout.TotalMilliseconds);
            return ms > int.MaxValue ? int.MaxValue : (int)ms;
        }

        private void ThrowIfClosed()
        {
            if (closing || state == ConnectionState.Closed)
            {
                throw new ConnectionClosedException("the connection is closed");
            }
        }

        /// <summary>
        /// Appends one frame to the outbound buffer and wakes the writer. The frame is encoded in
        /// place, under the lock: for small messages a second buffer and a copy would cost more
        /// than the lock is held.
        /// </summary>
        private void Enqueue(uint subscriptionId, string subject, string replySubject,
                             WireAction action, Message body)
        {
            lock (writeLock)
            {
                ThrowIfClosed();
                WaitForRoom();
                int start = pending.Length;
                pending.WriteFrame(subscriptionId, subject, replySubject, action, body);
                int length = pending.Length - start;
                if (length > gatewayMaxFrame)
                {
                    pending.Length = start;
                    throw new EncodeException("the frame would be " + length
                                              + " bytes; the gateway accepts at most " + gatewayMaxFrame);
                }
                if (action == WireAction.SendMessage) messagesSent++;
                WakeWriter();
            }
        }

        /// <summary>
        /// Back-pressure. Connected: wait while the buffer is over its limit (the writer wakes us
        /// after each write). Reconnecting: there is no writer to wait for, so fail instead of
        /// blocking the caller for the length of an outage. Caller holds writeLock.
        /// </summary>
        private void WaitForRoom()
        {
            while (pending.Length >= parameters.MaxOutboundBytes)
            {
                if (state == ConnectionState.Reconnecting)
                {
                    throw new NotConnectedException(
                        "not connected to the gateway, and " + pending.Length
                        + " bytes are already waiting to be sent after reconnecting");
                }
                publishersWaiting++;
                try
                {
                    Monitor.Wait(writeLock);
                }
                finally
                {
                    publishersWaiting--;
                }
                ThrowIfClosed();
            }
        }

        /// <summary>Caller holds writeLock. Publishers waiting for room share the monitor with the
        /// writer, so they are woken together and re-check their own condition.</summary>
        private void WakeWriter()
        {
            if (!writerWaiting) return;
            if (publishersWaiting > 0) Monitor.PulseAll(writeLock); else Monitor.Pulse(writeLock);
        }

        private PendingReply RegisterRequest(string subject, out long id)
        {
            lock (requestsLock)
            {
                id = ++lastRequestId;
                var pendingReply = new PendingReply(id, subject, false);
                requests.Add(id, pendingReply);
                return pendingReply;
            }
        }

        private PendingReply StartRequest(string subject, Message message)
        {
            EnsureInboxSubscribed();
            long id;
            var pendingReply = RegisterRequest(subject, out id);
            try
            {
                Enqueue(0, subject, inboxPrefix + id.ToString(CultureInfo.InvariantCulture),
                        WireAction.SendMessage, message);
            }
            catch
            {
                lock (requestsLock) requests.Remove(id);
                throw;
            }
            return pendingReply;
        }

        /// <summary>Subscribes the inbox wildcard on first use (and keeps it for the life of the
        /// connection; reconnects subscribe it again).</summary>
        private void EnsureInboxSubscribed()
        {
            lock (writeLock)
            {
                ThrowIfClosed();
                if (inboxSubscriptionId != 0) return;
                inboxSubscriptionId = ++lastSubscriptionId;
                if (state == ConnectionState.Connected)
                {
                    pending.WriteFrame(inboxSubscriptionId, inboxPrefix + "*", null, WireAction.Subscribe, null);
                    WakeWriter();
                }
            }
        }

        /// <summary>
        /// MM/2: before the first request after (re)connecting, make sure the inbox subscription is
        /// live across the mesh with a mesh-wide flush. Without it, a responder on another gateway
        /// could answer before that gateway has learnt the inbox interest (interest and requests
        /// travel on different mesh links) and the first reply would be lost. Returns the
        /// confirmation to wait for, or null when none is needed.
        /// </summary>
        private PendingReply BeginConfirmInbox()
        {
            EnsureInboxSubscribed();
            lock (writeLock)
            {
                if (inboxConfirmed || protocolVersion < 2 || state != ConnectionState.Connected)
                {
                    return null;
                }
                if (inboxConfirmation == null || inboxConfirmation.IsDone)
                {
                    inboxConfirmation = StartFlushLocked(true);
                }
                return inboxConfirmation;
            }
        }

        private void ConfirmInbox(long deadline, string subject)
        {
            var confirmation = BeginConfirmInbox();
            if (confirmation == null) return;
            Message ignored;
            try
            {
                if (!confirmation.Wait(deadline, out ignored))
                {
                    throw new MeshTimeoutException("no reply to `" + subject
                                                   + "`: the inbox was not confirmed in time");
                }
            }
            catch (ConnectionClosedException)
            {
                throw;
            }
            catch (MessagingMeshException exception)
            {
                if (exception is MeshTimeoutException) throw;
                // The connection was lost during the confirmation: send the request anyway; it
                // goes out after the inbox is subscribed again.
            }
        }

        private PendingReply StartFlush(bool meshWide)
        {
            lock (writeLock)
            {
                ThrowIfClosed();
                return StartFlushLocked(meshWide);
            }
        }

        /// <summary>Registers a flush and queues its PING. Body: <c>flush</c> (int64, the id the
        /// PONG echoes back) and, for the mesh-wide form, <c>mesh</c> = true. Caller holds writeLock.</summary>
        private PendingReply StartFlushLocked(bool meshWide)
        {
            long id = ++lastFlushId;
            var waiter = new PendingReply(id, "", meshWide);
            var body = new Message();
            if (meshWide) body.AddBool("mesh", true);
            body.AddInt64("flush", id);
            flushes.Add(id, waiter);
            pending.WriteFrame(0, null, null, WireAction.Ping, body);
            WakeWriter();
            return waiter;
        }
    }
}
