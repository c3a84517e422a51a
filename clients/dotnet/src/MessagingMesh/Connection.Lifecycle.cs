using System;
using System.Collections.Generic;
using System.Net.Sockets;
using System.Threading;

namespace MessagingMesh
{
    // Losing the gateway, reconnecting and resubscribing, and closing for good.
    public sealed partial class Connection
    {
        /// <summary>
        /// The reader lost <paramref name="lost"/>: switch to Reconnecting, drop the frames that
        /// were never written (they may include SUBSCRIBEs that the resubscribe will repeat), fail
        /// the flushes whose PINGs can no longer be answered, and raise Disconnected. Returns false
        /// when the connection is closing anyway.
        /// </summary>
        private bool ConnectionLost(Socket lost, string reason)
        {
            List<PendingReply> failed;
            lock (writeLock)
            {
                if (closing) return false;
                state = ConnectionState.Reconnecting;
                socket = null;
                tlsStream = null;
                pending.Length = 0;
                inboxConfirmed = false;
                failed = new List<PendingReply>(flushes.Values);
                flushes.Clear();
                Monitor.PulseAll(writeLock);
            }
            CloseQuietly(lost);
            var lostException = new MessagingMeshException("the connection to the gateway was lost: " + reason);
            foreach (var waiter in failed) waiter.Complete(null, lostException);
            Logger.Warning("lost gateway " + Describe() + ": " + reason);
            var handlers = Disconnected;
            if (handlers != null)
            {
                var arguments = new ConnectionEventArgs(reason);
                notifications.Post(() => handlers(this, arguments));
            }
            return true;
        }

        /// <summary>
        /// Tries to reach the gateway again, with exponential backoff and jitter, until it succeeds,
        /// the attempts run out, or the connection is closed. On success, queues SUBSCRIBE for the
        /// inbox and every live subscription ahead of whatever was published meanwhile.
        /// </summary>
        private bool Reconnect()
        {
            var random = new Random();
            int delay = parameters.ReconnectDelayMs;
            int attempts = 0;
            while (true)
            {
                if (parameters.MaxReconnectAttempts >= 0 && attempts >= parameters.MaxReconnectAttempts)
                {
                    return false;
                }
                int jittered = delay + random.Next(delay / 2 + 1);
                if (closedSignal.WaitOne(jittered)) return false;
                attempts++;
                Handshake handshake;
                try
                {
                    handshake = OpenAndHandshake();
                }
                catch (MessagingMeshException exception)
                {
                    Logger.Debug("reconnect attempt " + attempts + " failed: " + exception.Message);
                    delay = Math.Min(delay * 2, parameters.ReconnectMaxDelayMs);
                    continue;
                }
                lock (writeLock)
                {
                    if (closing)
                    {
                        CloseQuietly(handshake.Socket);
                        return false;
                    }
                    Adopt(handshake);
                    var resubscribe = new WireWriter(InitialOutboundCapacity + pending.Length);
                    if (inboxSubscriptionId != 0)
                    {
                        resubscribe.WriteFrame(inboxSubscriptionId, inboxPrefix + "*", null,
                                               WireAction.Subscribe, null);
                    }
                    var live = new List<Subscription>(subscriptions.Values);
                    live.Sort((a, b) => a.Id.CompareTo(b.Id));
                    foreach (var subscription in live)
                    {
                        resubscribe.WriteFrame(subscription.Id, subscription.Subject, null,
                                               WireAction.Subscribe, null);
                    }
                    resubscribe.Reserve(pending.Length);
                    Buffer.BlockCopy(pending.Buffer, 0, resubscribe.Buffer, resubscribe.Length, pending.Length);
                    resubscribe.Length += pending.Length;
                    pending = resubscribe;
                    state = ConnectionState.Connected;
                    lastSendMs = Clock.NowMs;
                    Monitor.PulseAll(writeLock);
                }
                Interlocked.Increment(ref reconnects);
                Logger.Info("reconnected to gateway " + Describe() + " (MM/" + handshake.ProtocolVersion + ")");
                var handlers = Reconnected;
                if (handlers != null)
                {
                    var arguments = new ConnectionEventArgs("reconnected after " + attempts + " attempt(s)");
                    notifications.Post(() => handlers(this, arguments));
                }
                return true;
            }
        }

        /// <summary>
        /// Closes for good. <paramref name="byApplication"/>: send DISCONNECT after the queued
        /// frames and wait (bounded) for the writer to write them.
        /// </summary>
        private void Close(string reason, bool byApplication)
        {
            Socket closingSocket;
            lock (writeLock)
            {
                if (closing) return;
                closing = true;
                if (byApplication && state == ConnectionState.Connected)
                {
                    pending.WriteFrame(0, null, null, WireAction.Disconnect, null);
                }
                Monitor.PulseAll(writeLock);
            }
            closedSignal.Set();
            var current = Thread.CurrentThread;
            if (writerThread != null && current != writerThread)
            {
                writerThread.Join(parameters.CloseTimeoutMs);
            }
            lock (writeLock)
            {
                state = ConnectionState.Closed;
                closingSocket = socket;
                socket = null;
                Monitor.PulseAll(writeLock);
            }
            CloseQuietly(closingSocket);
            if (readerThread != null && current != readerThread) readerThread.Join(parameters.CloseTimeoutMs);

            lock (queue)
            {
                queueClosed = true;
                foreach (var delivery in queue) delivery.Subscription.Dequeued(delivery.Frame.Length);
                queue.Clear();
                Monitor.PulseAll(queue);
            }
            if (dispatchThread != null && current != dispatchThread) dispatchThread.Join(parameters.CloseTimeoutMs);

            var closed = new ConnectionClosedException("the connection is closed: " + reason);
            List<PendingReply> failed;
            lock (requestsLock)
            {
                failed = new List<PendingReply>(requests.Values);
                requests.Clear();
            }
            lock (writeLock)
            {
                failed.AddRange(flushes.Values);
                flushes.Clear();
                foreach (var subscription in subscriptions.Values) subscription.Deactivate();
            }
            foreach (var waiter in failed) waiter.Complete(null, closed);

            Logger.Info("connection to gateway " + Describe() + " closed: " + reason);
            var handlers = Closed;
            Action last = null;
            if (handlers != null)
            {
                var arguments = new ConnectionEventArgs(reason);
                last = () => handlers(this, arguments);
            }
            notifications.Stop(last, parameters.CloseTimeoutMs);
        }
    }
}
