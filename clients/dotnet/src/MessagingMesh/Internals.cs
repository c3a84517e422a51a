using System;
using System.Globalization;
using System.Collections.Generic;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Threading;
using System.Threading.Tasks;

namespace MessagingMesh
{
    /// <summary>A monotonic millisecond clock (wall-clock changes do not move it).</summary>
    internal static class Clock
    {
        private static readonly Stopwatch Watch = Stopwatch.StartNew();

        internal static long NowMs { get { return Watch.ElapsedMilliseconds; } }

        /// <summary>
        /// A duration in milliseconds as the Rust client prints one (its <c>Debug</c> form), so
        /// that error texts match across languages: <c>500ms</c>, <c>2s</c>, <c>1.5s</c>.
        /// </summary>
        internal static string Describe(long ms)
        {
            if (ms < 1000) return ms == 0 ? "0ns" : ms.ToString(CultureInfo.InvariantCulture) + "ms";
            long seconds = ms / 1000;
            long rest = ms % 1000;
            var text = seconds.ToString(CultureInfo.InvariantCulture);
            if (rest != 0) text += "." + rest.ToString("000", CultureInfo.InvariantCulture).TrimEnd('0');
            return text + "s";
        }

        /// <summary>Milliseconds left until <paramref name="deadlineMs"/>, never negative.</summary>
        internal static int Remaining(long deadlineMs)
        {
            long left = deadlineMs - NowMs;
            return left <= 0 ? 0 : (int)Math.Min(left, int.MaxValue);
        }
    }

    /// <summary>
    /// One outstanding request or flush: completed once, by the socket reader (reply, PONG,
    /// NO_RESPONDERS) or by the connection (loss, close), and waited for by the caller either by
    /// blocking (<see cref="Wait"/>) or as a task (<see cref="AsTask"/>).
    /// </summary>
    /// <remarks>
    /// The task is created only when asked for, with RunContinuationsAsynchronously, so
    /// completing it never runs application code on the socket reader's thread.
    /// </remarks>
    internal sealed class PendingReply
    {
        internal readonly long Id;
        internal readonly string Subject;
        internal readonly bool MeshFlush;
        private bool done;
        private Message reply;
        private Exception error;
        private TaskCompletionSource<Message> completion;

        internal PendingReply(long id, string subject, bool meshFlush)
        {
            Id = id;
            Subject = subject;
            MeshFlush = meshFlush;
        }

        internal bool IsDone { get { lock (this) return done; } }

        internal void Complete(Message message, Exception failure)
        {
            TaskCompletionSource<Message> task;
            lock (this)
            {
                if (done) return;
                done = true;
                reply = message;
                error = failure;
                task = completion;
                Monitor.PulseAll(this);
            }
            if (task != null)
            {
                if (failure != null) task.TrySetException(failure); else task.TrySetResult(message);
            }
        }

        /// <summary>Waits until completed or <paramref name="deadlineMs"/>; false on timeout.
        /// Rethrows the failure the reply was completed with.</summary>
        internal bool Wait(long deadlineMs, out Message message)
        {
            lock (this)
            {
                while (!done)
                {
                    int left = Clock.Remaining(deadlineMs);
                    if (left == 0)
                    {
                        message = null;
                        return false;
                    }
                    Monitor.Wait(this, left);
                }
                if (error != null) throw Rethrowable(error);
                message = reply;
                return true;
            }
        }

        internal Task<Message> AsTask()
        {
            lock (this)
            {
                if (completion == null)
                {
                    completion = new TaskCompletionSource<Message>(
                        TaskCreationOptions.RunContinuationsAsynchronously);
                    if (done)
                    {
                        if (error != null) completion.TrySetException(error);
                        else completion.TrySetResult(reply);
                    }
                }
                return completion.Task;
            }
        }

        // The same exception object would carry the stack of the first throw; throw a fresh one of
        // the same meaning where we can, so each waiter gets its own stack trace.
        private static Exception Rethrowable(Exception failure)
        {
            var noResponders = failure as NoRespondersException;
            if (noResponders != null) return new NoRespondersException(noResponders.Subject);
            return failure;
        }
    }

    /// <summary>
    /// Runs connection events (Error, Disconnected, Reconnected, Closed) on one library thread, in
    /// order, so that neither the socket reader nor the dispatcher ever waits for an event handler.
    /// The queue is unbounded but only ever holds rare events: errors are reported once per
    /// episode, not once per message.
    /// </summary>
    internal sealed class NotificationQueue
    {
        private readonly Queue<Action> actions = new Queue<Action>();
        private readonly Thread thread;
        private bool stopping;

        internal NotificationQueue(string name)
        {
            thread = new Thread(Run);
            thread.IsBackground = true;
            thread.Name = name;
            thread.Start();
        }

        internal void Post(Action action)
        {
            lock (actions)
            {
                if (stopping) return;
                actions.Enqueue(action);
                Monitor.Pulse(actions);
            }
        }

        /// <summary>Lets queued events run, then ends the thread; waits up to
        /// <paramref name="timeoutMs"/> unless called from the event thread itself.</summary>
        internal void Stop(Action last, int timeoutMs)
        {
            lock (actions)
            {
                if (stopping) return;
                if (last != null) actions.Enqueue(last);
                stopping = true;
                Monitor.Pulse(actions);
            }
            if (Thread.CurrentThread != thread) thread.Join(timeoutMs);
        }

        private void Run()
        {
            while (true)
            {
                Action action;
                lock (actions)
                {
                    while (actions.Count == 0)
                    {
                        if (stopping) return;
                        Monitor.Wait(actions);
                    }
                    action = actions.Dequeue();
                }
                try
                {
                    action();
                }
                catch (Exception exception)
                {
                    Logger.Error("connection event handler threw: " + exception);
                }
            }
        }
    }

    /// <summary>The random part of a connection's reply inbox (SPEC §7.4).</summary>
    internal static class InboxToken
    {
        private const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

        /// <summary>Length of the token: 22 base62 characters carry 130 random bits.</summary>
        internal const int Length = 22;

        /// <summary>
        /// 22 base62 characters from the operating system's secure random source. Bytes of 248 and
        /// above are rejected (248 = 4 × 62), so every character is equally likely.
        /// </summary>
        internal static string Create()
        {
            var chars = new char[Length];
            var random = new byte[64];
            int filled = 0;
            using (var source = RandomNumberGenerator.Create())
            {
                while (filled < Length)
                {
                    source.GetBytes(random);
                    for (int i = 0; i < random.Length && filled < Length; i++)
                    {
                        if (random[i] < 248) chars[filled++] = Alphabet[random[i] % 62];
                    }
                }
            }
            return new string(chars);
        }
    }
}
