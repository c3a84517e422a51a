// Prints every message on the given subject patterns, one line each, until interrupted.
//
//   mono Listen.exe [--gateway HOST:PORT] [--service NAME] [--count N] PATTERN...
//
// Defaults: localhost:5050, service VULCAN, pattern ">" (everything). With --count, exits after N
// messages. Lines look like:  PRICES.IBM [reply _INBOX.x.1] {seq=1 price=100.25}
using System;
using System.Threading;
using MessagingMesh;

public static class Listen
{
    public static int Main(string[] args)
    {
        var parameters = new ConnectionParams { GatewayHost = "localhost", GatewayPort = 5050, Service = "VULCAN", ClientName = "listen" };
        var patterns = new System.Collections.Generic.List<string>();
        long limit = long.MaxValue;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--gateway" && i + 1 < args.Length)
            {
                var parts = args[++i].Split(':');
                parameters.GatewayHost = parts[0];
                parameters.GatewayPort = int.Parse(parts[1]);
            }
            else if (args[i] == "--service" && i + 1 < args.Length) parameters.Service = args[++i];
            else if (args[i] == "--count" && i + 1 < args.Length) limit = long.Parse(args[++i]);
            else patterns.Add(args[i]);
        }
        if (patterns.Count == 0) patterns.Add(">");

        var done = new ManualResetEvent(false);
        Console.CancelKeyPress += (sender, e) => { e.Cancel = true; done.Set(); };
        long seen = 0;
        using (var connection = new Connection(parameters))
        {
            connection.Error += (sender, e) => Console.Error.WriteLine("error: " + e.Exception.Message);
            connection.Disconnected += (sender, e) => Console.Error.WriteLine("disconnected: " + e.Reason);
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
