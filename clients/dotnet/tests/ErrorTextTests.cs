using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using NUnit.Framework;

namespace MessagingMesh.Tests
{
    /// <summary>
    /// The error-text table of docs/protocol.md ("Error texts"), row by row against a real
    /// gateway: each mistake made with this library must give exactly the text in the table — the
    /// text the Rust, C and C++ clients give (the Rust tests read the same table).
    /// </summary>
    [TestFixture]
    public class ErrorTextTests
    {
        private sealed class Row
        {
            internal string Operation;
            internal string Input;
            internal string Text;
        }

        private static List<Row> Table()
        {
            var path = Path.Combine(Path.GetDirectoryName(TestData.Root), "docs", "protocol.md");
            var document = File.ReadAllText(path);
            int begin = document.IndexOf("<!-- error-texts:begin -->", StringComparison.Ordinal);
            int end = document.IndexOf("<!-- error-texts:end -->", StringComparison.Ordinal);
            Assert.That(begin, Is.GreaterThanOrEqualTo(0), "the table's begin marker in " + path);
            Assert.That(end, Is.GreaterThan(begin), "the table's end marker in " + path);
            var rows = new List<Row>();
            foreach (var line in document.Substring(begin, end - begin).Split('\n')
                         .Where(line => line.StartsWith("|", StringComparison.Ordinal)).Skip(2))
            {
                var cells = line.Trim().Trim('|').Split(new[] { " | " }, StringSplitOptions.None)
                    .Select(cell => cell.Trim()).ToArray();
                Assert.AreEqual(4, cells.Length, "a row has four cells: " + line);
                rows.Add(new Row { Operation = cells[1], Input = cells[2].Trim('`'), Text = cells[3] });
            }
            Assert.That(rows.Count, Is.GreaterThanOrEqualTo(10), "the table has its rows");
            return rows;
        }

        private static string TextOf(Action mistake)
        {
            try
            {
                mistake();
            }
            catch (MessagingMeshException exception)
            {
                return exception.Message;
            }
            Assert.Fail("no exception");
            return null;
        }

        [Test]
        public void EveryMistakeInTheTableGetsItsText()
        {
            using (var gateway = new GatewayProcess())
            using (var connection = new Connection(gateway.Params("ERRORS")))
            using (var silent = new Connection(gateway.Params("ERRORS")))
            {
                // A subscriber that never answers, for the timeout row.
                silent.Subscribe("Silent.service", (c, subject, reply, message, tag) => { });
                silent.Flush();
                var fields = new Message().AddInt32("qty", 1);
                foreach (var row in Table())
                {
                    var input = row.Input;
                    string text;
                    switch (row.Operation)
                    {
                        case "publish":
                            text = TextOf(() => connection.SendMessage(input, new Message()));
                            break;
                        case "publish with reply subject":
                            text = TextOf(() => connection.SendMessage("A", new Message(), input));
                            break;
                        case "subscribe":
                            text = TextOf(() => connection.Subscribe(input, (c, s, r, m, t) => { }));
                            break;
                        case "connect":
                            var parameters = gateway.Params(input);
                            text = TextOf(() => new Connection(parameters).Dispose());
                            break;
                        case "get int64 field":
                            text = TextOf(() => fields.GetInt64(input));
                            break;
                        case "request":
                            text = TextOf(() => connection.SendRequest(input, new Message(), 10000));
                            break;
                        case "request, 200 ms":
                            text = TextOf(() => connection.SendRequest(input, new Message(), 200));
                            break;
                        case "publish after close":
                            var closed = new Connection(gateway.Params("ERRORS"));
                            closed.Dispose();
                            text = TextOf(() => closed.SendMessage(input, new Message()));
                            break;
                        default:
                            Assert.Fail("the table has an operation this test does not know: " + row.Operation);
                            return;
                    }
                    Assert.AreEqual(row.Text, text, row.Operation + " `" + input + "`");
                }
            }
        }
    }
}
