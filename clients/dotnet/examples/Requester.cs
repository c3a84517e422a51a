// Sends requests to the adder service (see Responder.cs) and prints the replies.
//
//   mono Requester.exe [--gateway HOST:PORT] [--service NAME] [SUBJECT] [A] [B]
//
// Defaults: localhost:5050, service VULCAN, subject Service.Add, 1.5 + 2.25.
using System;
using System.Globalization;
using MessagingMesh;

public static class Requester
{
    public static int Main(string[] args)
    {
        var parameters = new ConnectionParams { GatewayHost = "localhost", GatewayPort = 5050, Service = "VULCAN", ClientName = "requester example" };
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
