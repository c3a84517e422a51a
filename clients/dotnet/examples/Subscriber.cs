// Subscribes to a subject pattern and prints what arrives, using the queue dispatch mode:
// the main thread runs the callbacks by calling ProcessMessageQueue.
//
//   mono Subscriber.exe [--gateway HOST[:PORT]] [--service NAME] [PATTERN] [COUNT]
//
// Defaults: localhost:5050, service DEFAULT, pattern PRICES.>, stop after 10 messages.
using System;
using MessagingMesh;

public static class Subscriber
{
    private const string Usage =
        "usage: mono Subscriber.exe [--gateway HOST[:PORT]] [--service NAME] [PATTERN] [COUNT]\n"
        + "Prints the first COUNT messages (default 10) on PATTERN (default PRICES.>), running the\n"
        + "callbacks on the main thread (queue dispatch mode). Defaults: localhost:5050, service DEFAULT.";

    public static int Main(string[] args)
    {
        var options = ExampleOptions.Parse(args, Usage, "subscriber example");
        var parameters = options.Parameters;
        parameters.DispatchMode = DispatchMode.Queue;
        var positional = options.Positional;
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
