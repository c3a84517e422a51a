// Answers requests: replies to {A: double, B: double} with {sum: A + B}.
//
//   mono Responder.exe [--gateway HOST:PORT] [--service NAME] [SUBJECT]
//
// Defaults: localhost:5050, service VULCAN, subject Service.Add. Runs until Enter is pressed
// (or standard input closes).
using System;
using MessagingMesh;

public static class Responder
{
    public static int Main(string[] args)
    {
        var parameters = new ConnectionParams { GatewayHost = "localhost", GatewayPort = 5050, Service = "VULCAN", ClientName = "responder example" };
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

        using (var connection = new Connection(parameters))
        {
            // Callbacks run on the connection's dispatcher thread (the default dispatch mode).
            connection.Subscribe(subject, (c, s, replySubject, request, tag) =>
            {
                if (replySubject.Length == 0) return; // a plain publish: nobody to answer
                double a;
                double b;
                var reply = new Message();
                if (request.TryGetDouble("A", out a) && request.TryGetDouble("B", out b))
                {
                    reply.AddDouble("sum", a + b);
                }
                else
                {
                    reply.AddString("error", "expected doubles A and B, got " + request);
                }
                c.SendReply(replySubject, reply);
            });
            connection.Flush();
            Console.WriteLine("answering requests on {0}; press Enter to stop", subject);
            Console.ReadLine();
        }
        return 0;
    }
}
