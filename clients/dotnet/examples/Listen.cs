// Prints every message on the given subject patterns, one line each, until interrupted.
//
//   mono Listen.exe [--gateway HOST[:PORT]] [--service NAME] [--count N] PATTERN...
//
// Defaults: localhost:5050, service DEFAULT, pattern ">" (everything). With --count, exits after N
// messages. Lines look like:  PRICES.IBM [reply _INBOX.x.1] {seq=1 price=100.25}
// Advisories are messages too: `Listen.exe '_MM.ADVISORY.>'` shows the gateway's and this
// client's (slow consumers cut off, clients refused, mesh links up and down, dropped messages).
using System;
using System.Threading;
using MessagingMesh;

public static class Listen
{
    private const string Usage =
        "usage: mono Listen.exe [--gateway HOST[:PORT]] [--service NAME] [--count N] [PATTERN...]\n"
        + "Prints every message on the patterns (default \">\"), one line each, until interrupted.\n"
        + "Defaults: localhost:5050, service DEFAULT. --count N: exit after N messages.";

    public static int Main(string[] args)
    {
        var options = ExampleOptions.Parse(args, Usage, "listen", acceptsCount: true);
        var parameters = options.Parameters;
        var patterns = options.Positional;
        long limit = options.Count > 0 ? options.Count : long.MaxValue;
        if (patterns.Count == 0) patterns.Add(">");

        var done = new ManualResetEvent(false);
        Console.CancelKeyPress += (sender, e) => { e.Cancel = true; done.Set(); };
        long seen = 0;
        using (var connection = new Connection(parameters))
        {
            connection.Error += (sender, e) => Console.Error.WriteLine("error: " + e.Exception.Message);
            connection.Disconnected += (sender, e) => Console.Error.WriteLine("disconnected (" + e.Reason + ") - reconnecting");
            connection.Reconnected += (sender, e) => Console.Error.WriteLine("reconnected");
            foreach (var pattern in patterns)
            {
                connection.Subscribe(pattern, (c, subject, reply, message, tag) =>
                {
                    Console.WriteLine(reply.Length > 0 ? "{0} [reply {1}] {2}" : "{0} {2}", subject, reply, message);
                    if (Interlocked.Increment(ref seen) >= limit) done.Set();
                });
            }
            connection.Flush();
            Console.Error.WriteLine("listening on {0} (service {1})", string.Join(", ", patterns.ToArray()), parameters.Service);
            done.WaitOne();
        }
        return 0;
    }
}
