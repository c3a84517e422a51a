// Sends requests to the adder service (see Responder.cs) and prints the replies.
//
//   mono Requester.exe [--gateway HOST[:PORT]] [--service NAME] [SUBJECT] [A] [B]
//
// Defaults: localhost:5050, service DEFAULT, subject Service.Add, 1.5 + 2.25.
using System;
using System.Globalization;
using MessagingMesh;

public static class Requester
{
    private const string Usage =
        "usage: mono Requester.exe [--gateway HOST[:PORT]] [--service NAME] [SUBJECT] [A] [B]\n"
        + "Asks SUBJECT (default Service.Add) for A + B (default 1.5 + 2.25) and prints the answer.\n"
        + "Defaults: localhost:5050, service DEFAULT.";

    public static int Main(string[] args)
    {
        var options = ExampleOptions.Parse(args, Usage, "requester example");
        var parameters = options.Parameters;
        var positional = options.Positional;
        string subject = positional.Count > 0 ? positional[0] : "Service.Add";
        double a = positional.Count > 1 ? double.Parse(positional[1], CultureInfo.InvariantCulture) : 1.5;
        double b = positional.Count > 2 ? double.Parse(positional[2], CultureInfo.InvariantCulture) : 2.25;

        using (var connection = new Connection(parameters))
        {
            try
            {
                var reply = connection.SendRequest(subject, new Message().AddDouble("A", a).AddDouble("B", b), 5000);
                Console.WriteLine("{0} + {1} = {2}", a, b, reply.GetDouble("sum"));
                return 0;
            }
            catch (NoRespondersException)
            {
                Console.Error.WriteLine("nobody answers requests on {0}", subject);
            }
            catch (MeshTimeoutException)
            {
                Console.Error.WriteLine("no reply from {0} within 5 s", subject);
            }
            return 1;
        }
    }
}
