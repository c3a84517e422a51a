// Answers requests: replies to {A: double, B: double} with {sum: A + B}.
//
//   mono Responder.exe [--gateway HOST[:PORT]] [--service NAME] [SUBJECT]
//
// Defaults: localhost:5050, service DEFAULT, subject Service.Add. Runs until Enter is pressed
// (or standard input closes).
using System;
using MessagingMesh;

public static class Responder
{
    private const string Usage =
        "usage: mono Responder.exe [--gateway HOST[:PORT]] [--service NAME] [SUBJECT]\n"
        + "Answers {A, B} with {sum: A + B} on SUBJECT (default Service.Add) until Enter is pressed.\n"
        + "Defaults: localhost:5050, service DEFAULT.";

    public static int Main(string[] args)
    {
        var options = ExampleOptions.Parse(args, Usage, "responder example");
        var parameters = options.Parameters;
        var positional = options.Positional;
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
