// The C# side of the C++ interop tests: compiled together with the C# client's sources
// (clients/dotnet/src) by the C++ test build. Every mode takes the gateway port and the service.
//
//   listen  PORT SERVICE PATTERN COUNT   print COUNT messages as typed lines, then exit
//   publish PORT SERVICE SUBJECT         publish the all-types message (reply INTEROP.REPLY.CS)
//   reply   PORT SERVICE SUBJECT COUNT   echo COUNT requests, adding from="csharp"
//   request PORT SERVICE SUBJECT         request with the all-types message; expect it echoed
//                                        back with from="cpp"; exit 0 when it is
//
// Subscriptions are flushed mesh-wide before "listening" / "answering" is printed, so the
// other side may publish as soon as it sees that line.
using System;
using System.Globalization;
using System.Text;
using System.Threading;
using MessagingMesh;

public static class InteropPeer
{
    public static int Main(string[] args)
    {
        Console.OutputEncoding = new UTF8Encoding(false);
        var parameters = new ConnectionParams
        {
            GatewayHost = "127.0.0.1",
            GatewayPort = int.Parse(args[1], CultureInfo.InvariantCulture),
            Service = args[2],
            ClientName = "interop-peer",
        };
        string subject = args[3];
        using (var connection = new Connection(parameters))
        {
            switch (args[0])
            {
                case "listen": return Listen(connection, subject, int.Parse(args[4], CultureInfo.InvariantCulture));
                case "publish":
                    connection.SendMessage(subject, AllTypes(), "INTEROP.REPLY.CS");
                    connection.Flush();
                    return 0;
                case "reply": return Reply(connection, subject, int.Parse(args[4], CultureInfo.InvariantCulture));
                case "request": return Request(connection, subject);
                default:
                    Console.Error.WriteLine("unknown mode " + args[0]);
                    return 2;
            }
        }
    }

    /// <summary>The message both sides build and check: every type, a nested message, a duplicate name.</summary>
    public static Message AllTypes()
    {
        return new Message()
            .AddString("text", "Zürich \"quoted\" 😀 日本")
            .AddInt32("i32", -42)
            .AddUInt32("u32", 4000000000)
            .AddInt64("i64", -9000000000000000000)
            .AddUInt64("u64", ulong.MaxValue)
            .AddDouble("pi", Math.PI)
            .AddDouble("negzero", -0.0)
            .AddBool("yes", true)
            .AddBool("no", false)
            .AddBlob("blob", new byte[] { 0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff })
            .AddMessage("meta", new Message().AddUInt32("seq", 7).AddString("empty", ""))
            .AddString("tag", "a")
            .AddString("tag", "b");
    }

    private static int Listen(Connection connection, string pattern, int count)
    {
        int seen = 0;
        var done = new ManualResetEvent(false);
        var output = new object();
        connection.Subscribe(pattern, (c, subject, reply, message, tag) =>
        {
            lock (output)
            {
                Console.WriteLine("subject=" + subject + " reply=" + reply);
                Print(message, "");
                Console.Out.Flush();
            }
            if (Interlocked.Increment(ref seen) >= count) done.Set();
        });
        connection.Flush(10000, meshWide: true);
        Console.WriteLine("listening");
        Console.Out.Flush();
        return done.WaitOne(30000) ? 0 : 1;
    }

    private static int Reply(Connection connection, string subject, int count)
    {
        int answered = 0;
        var done = new ManualResetEvent(false);
        connection.Subscribe(subject, (c, s, reply, request, tag) =>
        {
            var answer = new Message();
            foreach (var field in request) answer.Add(field);
            answer.AddString("from", "csharp");
            c.SendReply(reply, answer);
            if (Interlocked.Increment(ref answered) >= count) done.Set();
        });
        connection.Flush(10000, meshWide: true);
        Console.WriteLine("answering");
        Console.Out.Flush();
        bool ok = done.WaitOne(30000);
        connection.Flush();
        return ok ? 0 : 1;
    }

    private static int Request(Connection connection, string subject)
    {
        var request = AllTypes();
        var reply = connection.SendRequest(subject, request, 10000);
        var expected = AllTypes().AddString("from", "cpp");
        if (!reply.ValueEquals(expected))
        {
            Console.WriteLine("unexpected reply:");
            Print(reply, "");
            return 1;
        }
        Console.WriteLine("reply ok");
        return 0;
    }

    /// <summary>The shortest text that reads back as the same double (Mono's "R" is not always shortest).</summary>
    private static string Shortest(double value)
    {
        for (int digits = 15; digits < 17; digits++)
        {
            string text = value.ToString("G" + digits, CultureInfo.InvariantCulture);
            if (double.Parse(text, CultureInfo.InvariantCulture) == value) return text;
        }
        return value.ToString("G17", CultureInfo.InvariantCulture);
    }

    /// <summary>One line per field, `name:type=value`; nested messages indented by two spaces.</summary>
    private static void Print(Message message, string indent)
    {
        foreach (var field in message)
        {
            string prefix = indent + field.Name + ":";
            switch (field.Type)
            {
                case FieldType.String: Console.WriteLine(prefix + "str=" + field.GetString()); break;
                case FieldType.Int32: Console.WriteLine(prefix + "i32=" + field.GetInt32().ToString(CultureInfo.InvariantCulture)); break;
                case FieldType.UInt32: Console.WriteLine(prefix + "u32=" + field.GetUInt32().ToString(CultureInfo.InvariantCulture)); break;
                case FieldType.Int64: Console.WriteLine(prefix + "i64=" + field.GetInt64().ToString(CultureInfo.InvariantCulture)); break;
                case FieldType.UInt64: Console.WriteLine(prefix + "u64=" + field.GetUInt64().ToString(CultureInfo.InvariantCulture)); break;
                case FieldType.Double:
                    double value = field.GetDouble();
                    string text = value == 0 && BitConverter.DoubleToInt64Bits(value) != 0 ? "-0" : Shortest(value);
                    Console.WriteLine(prefix + "f64=" + text);
                    break;
                case FieldType.Bool: Console.WriteLine(prefix + "bool=" + (field.GetBool() ? "true" : "false")); break;
                case FieldType.Blob:
                    var hex = new StringBuilder();
                    foreach (byte b in field.GetBlob()) hex.Append(b.ToString("x2"));
                    Console.WriteLine(prefix + "blob=" + hex);
                    break;
                case FieldType.Message:
                    Console.WriteLine(prefix + "msg={");
                    Print(field.GetMessage(), indent + "  ");
                    Console.WriteLine(indent + "}");
                    break;
                default: Console.WriteLine(prefix + "?"); break;
            }
        }
    }
}
