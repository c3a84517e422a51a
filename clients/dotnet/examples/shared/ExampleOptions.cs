// The command line every example takes, compiled into each of them:
//
//   [--gateway HOST[:PORT]] [--service NAME] [--count N] [--help] ARGUMENT...
//
// HOST alone means port 5050; the defaults are localhost:5050 and the service DEFAULT, as for
// every Messaging Mesh client and the mm tool. --help prints the example's usage and exits 0; an
// unknown option or a bad value prints why and exits 2. "--" ends the options.
using System;
using System.Collections.Generic;
using System.Globalization;
using MessagingMesh;

internal sealed class ExampleOptions
{
    /// <summary>Connection parameters, with --gateway and --service applied.</summary>
    public readonly ConnectionParams Parameters = new ConnectionParams();

    /// <summary>The arguments that are not options, in order.</summary>
    public readonly List<string> Positional = new List<string>();

    /// <summary>--count, or -1 when not given (only for examples that accept it).</summary>
    public long Count = -1;

    /// <summary>
    /// Parses <paramref name="args"/>. Prints <paramref name="usage"/> and exits 0 for --help;
    /// prints the problem and exits 2 for anything it cannot use.
    /// </summary>
    public static ExampleOptions Parse(string[] args, string usage, string clientName, bool acceptsCount = false)
    {
        var options = new ExampleOptions();
        options.Parameters.ClientName = clientName;
        bool optionsEnded = false;
        for (int i = 0; i < args.Length; i++)
        {
            string argument = args[i];
            if (optionsEnded || !argument.StartsWith("-", StringComparison.Ordinal) || argument == "-")
            {
                options.Positional.Add(argument);
                continue;
            }
            switch (argument)
            {
                case "--":
                    optionsEnded = true;
                    break;
                case "--help":
                case "-h":
                    Console.WriteLine(usage);
                    Environment.Exit(0);
                    break;
                case "--gateway":
                    SetGateway(options.Parameters, Value(args, ref i, usage), usage);
                    break;
                case "--service":
                    options.Parameters.Service = Value(args, ref i, usage);
                    break;
                case "--count":
                    if (!acceptsCount) Fail("unknown option --count", usage);
                    long count;
                    if (!long.TryParse(Value(args, ref i, usage), NumberStyles.None, CultureInfo.InvariantCulture, out count)
                        || count <= 0)
                    {
                        Fail("--count needs a positive number", usage);
                    }
                    options.Count = count;
                    break;
                default:
                    Fail("unknown option " + argument, usage);
                    break;
            }
        }
        return options;
    }

    private static string Value(string[] args, ref int i, string usage)
    {
        if (i + 1 >= args.Length) Fail(args[i] + " needs a value", usage);
        return args[++i];
    }

    /// <summary>HOST, HOST:PORT, [IPv6] or [IPv6]:PORT; HOST alone means port 5050.</summary>
    private static void SetGateway(ConnectionParams parameters, string address, string usage)
    {
        string host = address;
        string port = null;
        if (address.StartsWith("[", StringComparison.Ordinal))
        {
            int close = address.IndexOf(']');
            if (close < 0) Fail("--gateway " + address + ": missing ']'", usage);
            host = address.Substring(1, close - 1);
            if (close + 1 < address.Length)
            {
                if (address[close + 1] != ':') Fail("--gateway " + address + ": expected ':' after ']'", usage);
                port = address.Substring(close + 2);
            }
        }
        else if (address.IndexOf(':') >= 0 && address.IndexOf(':') == address.LastIndexOf(':'))
        {
            int colon = address.IndexOf(':');
            host = address.Substring(0, colon);
            port = address.Substring(colon + 1);
        }
        int number = ConnectionParams.DefaultPort;
        if (port != null
            && (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out number) || number < 1 || number > 65535))
        {
            Fail("--gateway " + address + ": the port must be a number from 1 to 65535", usage);
        }
        if (host.Length == 0) Fail("--gateway " + address + ": the host is missing", usage);
        parameters.GatewayHost = host;
        parameters.GatewayPort = number;
    }

    private static void Fail(string problem, string usage)
    {
        Console.Error.WriteLine(problem);
        Console.Error.WriteLine(usage);
        Environment.Exit(2);
    }
}
