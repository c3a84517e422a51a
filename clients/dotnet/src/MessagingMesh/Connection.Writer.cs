using System;
using System.Net.Sockets;
using System.Threading;

namespace MessagingMesh
{
    // The socket writer thread: coalesced writes, heartbeat PINGs, dead-gateway detection.
    public sealed partial class Connection
    {
        /// <summary>
        /// Sleeps until frames are queued (or a heartbeat is due), swaps the pending buffer with
        /// the spare, and writes it in one call outside the lock. Sends a PING when nothing was sent
        /// for <see cref="ConnectionParams.HeartbeatMs"/>, and declares the gateway dead when
        /// nothing arrived for twice its own interval.
        /// </summary>
        private void WriterLoop()
        {
            while (true)
            {
                WireWriter outgoing;
                Socket target;
                System.IO.Stream targetStream;
                lock (writeLock)
                {
                    while (true)
                    {
                        if (state == ConnectionState.Closed) return;
                        if (state == ConnectionState.Connected && pending.Length > 0) break;
                        if (closing && (pending.Length == 0 || state != ConnectionState.Connected)) return;
                        int wait = Timeout.Infinite;
                        if (state == ConnectionState.Connected && protocolVersion >= 2)
                        {
                            long now = Clock.NowMs;
                            if (parameters.HeartbeatMs > 0)
                            {
                                long due = lastSendMs + parameters.HeartbeatMs;
                                if (now >= due)
                                {
                                    pending.WriteFrame(0, null, null, WireAction.Ping, null);
                                    continue;
                                }
                                wait = (int)(due - now);
                            }
                            if (gatewayHeartbeatMs > 0)
                            {
                                long silentFor = now - Interlocked.Read(ref lastReceiveMs);
                                long limit = 2L * gatewayHeartbeatMs;
                                if (silentFor > limit)
                                {
                                    Abort(socket, "nothing received from the gateway for " + silentFor + " ms");
                                    wait = Timeout.Infinite;
                                    // The reader notices the abort and changes the state; wait for it.
                                }
                                else
                                {
                                    int untilDead = (int)(limit - silentFor) + 1;
                                    wait = wait == Timeout.Infinite ? untilDead : Math.Min(wait, untilDead);
                                }
                            }
                        }
                        writerWaiting = true;
                        try
                        {
                            Monitor.Wait(writeLock, wait);
                        }
                        finally
                        {
                            writerWaiting = false;
                        }
                    }
                    outgoing = pending;
                    pending = spare ?? new WireWriter(InitialOutboundCapacity);
                    spare = null;
                    target = socket;
                    targetStream = tlsStream;
                    if (publishersWaiting > 0) Monitor.PulseAll(writeLock);
                }

                int written = 0;
                int writes = 0;
                try
                {
                    if (targetStream != null)
                    {
                        targetStream.Write(outgoing.Buffer, 0, outgoing.Length);
                        targetStream.Flush();
                        written = outgoing.Length;
                        writes++;
                    }
                    while (written < outgoing.Length)
                    {
                        written += target.Send(outgoing.Buffer, written, outgoing.Length - written, SocketFlags.None);
                        writes++;
                    }
                }
                catch (Exception exception)
                {
                    // A socket error, or the socket closed under us: the reader sees the abort and
                    // reconnects. Anything else would be a bug here; it must not take the
                    // application's process down with an unhandled exception on this thread, so it
                    // is logged and handled the same way.
                    if (!(exception is SocketException || exception is ObjectDisposedException
                          || exception is System.IO.IOException))
                    {
                        Logger.Error("socket writer failed: " + exception);
                    }
                    Abort(target, "write failed: " + exception.Message);
                }

                lock (writeLock)
                {
                    bytesSent += written;
                    socketWrites += writes;
                    lastSendMs = Clock.NowMs;
                    if (outgoing.Buffer.Length > OutboundShrinkAbove)
                    {
                        outgoing = new WireWriter(InitialOutboundCapacity);
                    }
                    outgoing.Length = 0;
                    spare = outgoing;
                }
            }
        }

        /// <summary>Shuts a socket down so that the reader's blocking receive returns and the
        /// reader handles the loss (with <paramref name="reason"/>). Any thread may call it.</summary>
        private void Abort(Socket target, string reason)
        {
            if (target == null) return;
            lock (abortLock)
            {
                if (abortedSocket != target)
                {
                    abortedSocket = target;
                    abortReason = reason;
                }
            }
            try
            {
                target.Shutdown(SocketShutdown.Both);
            }
            catch (Exception)
            {
                // Already shut down or closed.
            }
        }
    }
}
