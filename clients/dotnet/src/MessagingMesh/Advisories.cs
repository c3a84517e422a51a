using System;
using System.Collections.Generic;
using System.Globalization;
using System.Threading;

namespace MessagingMesh
{
    /// <summary>
    /// Advisories (docs/protocol.md, "Advisories"): events published as messages on reserved
    /// subjects under <c>_MM.ADVISORY.</c>, as Rendezvous publishes <c>_RV.WARN.&gt;</c>. The
    /// gateway publishes its own (slow consumers cut off, refused clients, mesh links up and down)
    /// to every subscription that matches, like any message; subscribe to
    /// <c>_MM.ADVISORY.&gt;</c> to see them. The connection delivers one more to its own
    /// subscriptions only: <see cref="MessagesDropped"/>.
    /// </summary>
    public static class Advisories
    {
        /// <summary>The first tokens of every advisory subject.</summary>
        public const string Prefix = "_MM.ADVISORY.";

        /// <summary>
        /// Delivered by the connection to its own subscriptions that match it (never sent to the
        /// gateway) when another of its subscriptions passes its pending limit and drops
        /// messages: once per overflow episode, at most 5 a second (20 in a burst). Fields:
        /// <c>service</c>, <c>client_name</c>, <c>time_ms</c>, <c>subscription_id</c>,
        /// <c>pattern</c>, <c>dropped</c>, <c>limit_messages</c>, <c>limit_bytes</c>, <c>text</c>,
        /// <c>suppressed</c> (advisories left out by the rate limit since the last one).
        /// </summary>
        public const string MessagesDropped = "_MM.ADVISORY.WARN.LOCAL.MESSAGES_DROPPED";

        /// <summary>Slow consumer cut off by the gateway.</summary>
        public const string SlowConsumer = "_MM.ADVISORY.WARN.CLIENT.SLOW_CONSUMER";

        /// <summary>A client refused by the gateway (a limit, a rate, the service).</summary>
        public const string ClientRefused = "_MM.ADVISORY.WARN.CLIENT.REFUSED";

        /// <summary>A mesh link of the service came up.</summary>
        public const string LinkUp = "_MM.ADVISORY.INFO.LINK.UP";

        /// <summary>A mesh link of the service went down.</summary>
        public const string LinkDown = "_MM.ADVISORY.WARN.LINK.DOWN";
    }

    // The advisory the connection delivers to itself when a subscription passes its pending limit.
    public sealed partial class Connection
    {
        private const double AdvisoriesPerSecond = 5;
        private const double AdvisoryBurst = 20;

        // Touched by the socket reader only.
        private double advisoryTokens = AdvisoryBurst;
        private long advisoryLastMs = -1;
        private long advisoriesSuppressed;

        /// <summary>
        /// The socket reader found <paramref name="overflowing"/> past its pending limit (the first
        /// drop of an overflow episode): delivers <see cref="Advisories.MessagesDropped"/> to this
        /// connection's other subscriptions whose pattern matches it, each within its own pending
        /// limit, within the advisory rate.
        /// </summary>
        private void AdviseMessagesDropped(Subscription overflowing)
        {
            var targets = new List<Subscription>();
            foreach (var subscription in subscriptions.Values)
            {
                if (!ReferenceEquals(subscription, overflowing) && subscription.IsActive
                    && Subject.Matches(subscription.Subject, Advisories.MessagesDropped))
                {
                    targets.Add(subscription);
                }
            }
            if (targets.Count == 0 || !TakeAdvisoryToken()) return;
            long suppressed = advisoriesSuppressed;
            advisoriesSuppressed = 0;
            var body = new Message()
                .AddString("service", parameters.Service)
                .AddString("client_name", parameters.ClientName ?? "")
                .AddUInt64("time_ms", (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())
                .AddUInt32("subscription_id", overflowing.Id)
                .AddString("pattern", overflowing.Subject)
                .AddUInt64("dropped", (ulong)overflowing.Dropped)
                .AddUInt64("limit_messages", (ulong)Math.Max(0, overflowing.PendingMessageLimit))
                .AddUInt64("limit_bytes", (ulong)Math.Max(0L, overflowing.PendingByteLimit))
                .AddString("text", string.Format(CultureInfo.InvariantCulture,
                    "subscription {0} (`{1}`) passed its pending limit ({2} messages or {3} bytes); {4} messages dropped so far",
                    overflowing.Id, overflowing.Subject, overflowing.PendingMessageLimit,
                    overflowing.PendingByteLimit, overflowing.Dropped))
                .AddUInt64("suppressed", (ulong)suppressed);
            foreach (var target in targets)
            {
                var writer = new WireWriter(256);
                writer.WriteFrame(target.Id, Advisories.MessagesDropped, null, WireAction.SendMessage, body);
                var frame = writer.ToArray();
                bool report;
                if (!target.TryAdmit(frame.Length, out report))
                {
                    // Counted; not advised again (an advisory about an advisory would never end).
                    Interlocked.Increment(ref messagesDropped);
                    if (report) Report(new PendingLimitException(target), Advisories.MessagesDropped, target);
                    continue;
                }
                batch.Add(new Delivery
                {
                    Subscription = target,
                    Header = FrameHeader.Parse(frame, 0, frame.Length),
                    Frame = frame,
                });
            }
        }

        private bool TakeAdvisoryToken()
        {
            long now = Clock.NowMs;
            if (advisoryLastMs >= 0)
            {
                advisoryTokens = Math.Min(AdvisoryBurst,
                                          advisoryTokens + (now - advisoryLastMs) / 1000.0 * AdvisoriesPerSecond);
            }
            advisoryLastMs = now;
            if (advisoryTokens >= 1)
            {
                advisoryTokens -= 1;
                return true;
            }
            advisoriesSuppressed++;
            return false;
        }
    }
}
