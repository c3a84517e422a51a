// Subscribes to a subject pattern and prints what arrives, using the queue dispatch mode:
// the main thread runs the callbacks by calling ProcessMessageQueue.
//
//   mono Subscriber.exe [--gateway HOST:PORT] [--service NAME] [PATTERN] [COUNT]
//
// Defaults: localhost:5050, service VULCAN, pattern PRICES.>, stop after 10 messages.
using System;
using MessagingMesh;

public static class Subscriber
{
    public static int Main(string[] args)
    {
        var parameters = new ConnectionParams
        {
            GatewayHost = "localhost", GatewayPort = 5050, Service = "VULCAN", ClientName = "subscriber example",
            DispatchMode = DispatchMode.Queue,
        };
        var positional = new System.Collections.Generic.List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--gateway" && i + 1 < args.Length)
            {
                var parts = args[++i].Split(':');
                parameters.GatewayHost = parts[0];
                parameters.GatewayPort = int.Parse(parts[1]);
            }
            else if (args[i] == "--service" && i + 1 < args.Length) parameters.Service = args[++i];
            else positional.Add(args[i]);
        }
        string pattern = positional.Count > 0 ? positional[0] : "PRICES.>";
        int wanted = positional.Count > 1 ? int.Parse(positional[1]) : 10;

        using (var connection = new Connection(parameters))
        {
            connection.Error += (sender, e) => Console.Error.WriteLine("error: " + e.Exception.Message);
            int received = 0;
            using (connection.Subscribe(pattern, (c, subject, reply, message, tag) =>
            {
                received++;
                double price;
                if (message.TryGetDouble("price", out price))
                {
                    Console.WriteLine("{0}: price {1}", subject, price);
                }
                else
                {
                    Console.WriteLine("{0}: {1}", subject, message);
                }
            }))
            {
                connection.Flush();
                Console.WriteLine("listening on {0}", pattern);
                while (received < wanted)
                {
                    connection.ProcessMessageQueue(1000, 100);
                }
            }
        }
        return 0;
    }
}
