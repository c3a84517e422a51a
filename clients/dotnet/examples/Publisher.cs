// Publishes a few messages to a subject.
//
//   mono Publisher.exe [--gateway HOST[:PORT]] [--service NAME] [SUBJECT] [COUNT]
//
// Defaults: localhost:5050, service DEFAULT, subject PRICES.IBM, 10 messages.
using System;
using MessagingMesh;

public static class Publisher
{
    private const string Usage =
        "usage: mono Publisher.exe [--gateway HOST[:PORT]] [--service NAME] [SUBJECT] [COUNT]\n"
        + "Publishes COUNT messages (default 10) to SUBJECT (default PRICES.IBM).\n"
        + "Defaults: localhost:5050, service DEFAULT.";

    public static int Main(string[] args)
    {
        var options = ExampleOptions.Parse(args, Usage, "publisher example");
        var parameters = options.Parameters;
        var positional = options.Positional;
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
