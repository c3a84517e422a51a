// Publishes a few messages to a subject.
//
//   mono Publisher.exe [--gateway HOST:PORT] [--service NAME] [SUBJECT] [COUNT]
//
// Defaults: localhost:5050, service VULCAN, subject PRICES.IBM, 10 messages.
using System;
using MessagingMesh;

public static class Publisher
{
    public static int Main(string[] args)
    {
        var parameters = new ConnectionParams { GatewayHost = "localhost", GatewayPort = 5050, Service = "VULCAN", ClientName = "publisher example" };
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
        string subject = positional.Count > 0 ? positional[0] : "PRICES.IBM";
        int count = positional.Count > 1 ? int.Parse(positional[1]) : 10;

        using (var connection = new Connection(parameters))
        {
            for (int i = 1; i <= count; i++)
            {
                var message = new Message()
                    .AddInt32("seq", i)
                    .AddDouble("price", 100 + i * 0.25)
                    .AddString("currency", "USD")
                    .AddInt64("time", DateTime.UtcNow.Ticks);
                connection.SendMessage(subject, message);
            }
            // Wait until the gateway has everything before disconnecting.
            connection.Flush();
            Console.WriteLine("published {0} messages to {1}", count, subject);
        }
        return 0;
    }
}
