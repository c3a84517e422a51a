using NUnit.Framework;

namespace MessagingMesh.Tests
{
    /// <summary>The subject grammar, one case per line (SPEC §6.1).</summary>
    [TestFixture]
    public class SubjectTests
    {
        [TestCase("A")]
        [TestCase("A.B")]
        [TestCase("PRICES.IBM.NYSE")]
        [TestCase("_INBOX.k3Jx9aQ0pLm2Zr8sT4uVw6.1")]
        [TestCase("a-b_c:d/e@f")]
        [TestCase("日本.語")]
        [TestCase("emoji.\U0001F600")]
        public void ValidSubjects(string subject)
        {
            Assert.IsTrue(Subject.IsValidSubject(subject));
            Assert.IsTrue(Subject.IsValidPattern(subject));
            Assert.DoesNotThrow(() => Subject.ValidateSubject(subject));
        }

        [TestCase("*")]
        [TestCase(">")]
        [TestCase("A.*")]
        [TestCase("A.>")]
        [TestCase("*.B.>")]
        [TestCase("PRICES.*.>")]
        public void ValidPatternsThatAreNotPublishable(string pattern)
        {
            Assert.IsTrue(Subject.IsValidPattern(pattern));
            Assert.IsFalse(Subject.IsValidSubject(pattern));
            var error = Assert.Throws<InvalidSubjectException>(() => Subject.ValidateSubject(pattern));
            StringAssert.Contains("wildcard", error.Message);
        }

        [TestCase("", 0, null, "invalid pattern ``: subject is empty")]
        [TestCase("A..B", 2, "", "invalid pattern `A..B`: empty token at position 2")]
        [TestCase(".A", 1, "", "invalid pattern `.A`: empty token at position 1")]
        [TestCase("A.", 2, "", "invalid pattern `A.`: empty token at position 2")]
        [TestCase("A.b c", 2, "b c", "invalid pattern `A.b c`: token 2 contains white space (`b c`)")]
        [TestCase("A.b\u00a0c", 2, "b\u00a0c", "token 2 contains white space")]
        [TestCase("A.b\u3000c", 2, "b\u3000c", "token 2 contains white space")]
        [TestCase("A.b\u2028", 2, "b\u2028", "token 2 contains white space")]
        [TestCase("A.b\tc", 2, "b\tc", "token 2 contains a control character")]
        [TestCase("x\u0000", 1, "x\u0000", "token 1 contains a control character")]
        [TestCase("A.\u007f", 2, "\u007f", "token 2 contains a control character")]
        [TestCase("A.\u0085", 2, "\u0085", "token 2 contains white space")]
        [TestCase("A.\u0090", 2, "\u0090", "token 2 contains a control character")]
        [TestCase("A.ab*", 2, "ab*", "invalid pattern `A.ab*`: token 2 mixes a wildcard with other characters (`ab*`)")]
        [TestCase(">x.B", 1, ">x", "token 1 mixes a wildcard with other characters (`>x`)")]
        [TestCase("A.>.B", 2, ">", "invalid pattern `A.>.B`: `>` at token 2 is not the last token (`>`)")]
        // Checked in order, as the Rust implementation does: the end of token 2 comes before the
        // bad character in token 3.
        [TestCase("A.>.b c", 2, ">", "invalid pattern `A.>.b c`: `>` at token 2 is not the last token (`>`)")]
        public void InvalidPatternsNameTheOffendingToken(string pattern, int position, string token, string text)
        {
            Assert.IsFalse(Subject.IsValidPattern(pattern));
            var error = Assert.Throws<InvalidSubjectException>(() => Subject.ValidatePattern(pattern));
            Assert.AreEqual(position, error.Position);
            Assert.AreEqual(token, error.Token);
            Assert.AreEqual("pattern", error.What);
            StringAssert.Contains(text, error.Message);
        }

        [TestCase("A.*.b c", "invalid subject `A.*.b c`: token 3 contains white space (`b c`)")]
        [TestCase("A.*.>", "invalid subject `A.*.>`: wildcard at token 2 is not allowed here (`*`)")]
        [TestCase("A.ab*.*", "invalid subject `A.ab*.*`: token 2 mixes a wildcard with other characters (`ab*`)")]
        public void ASubjectsWildcardIsReportedAfterEveryOtherMistake(string subject, string text)
        {
            Assert.AreEqual(text, Assert.Throws<InvalidSubjectException>(() => Subject.ValidateSubject(subject)).Message);
        }

        [Test]
        public void LoneSurrogatesAreNotUtf8()
        {
            // Built at run time: attribute strings are stored as UTF-8, which cannot hold one.
            string pattern = "A." + (char)0xD800;
            var error = Assert.Throws<InvalidSubjectException>(() => Subject.ValidatePattern(pattern));
            Assert.AreEqual(0, error.Position);
            StringAssert.EndsWith(": not valid UTF-8", error.Message);
            Assert.IsTrue(Subject.IsValidSubject("A." + char.ConvertFromUtf32(0x1F600)));
        }

        [Test]
        public void LengthIsCountedInUtf8Bytes()
        {
            Assert.IsTrue(Subject.IsValidSubject(new string('a', 255)));
            var error = Assert.Throws<InvalidSubjectException>(() => Subject.ValidateSubject(new string('a', 256)));
            Assert.AreEqual("invalid subject `" + new string('a', 256) + "`: 256 bytes long; the maximum is 255",
                            error.Message);
            // 128 two-byte characters: 128 chars, 256 bytes.
            Assert.IsFalse(Subject.IsValidSubject(new string('é', 128)));
            Assert.IsTrue(Subject.IsValidSubject(new string('é', 127)));
        }

        [Test]
        public void ServiceNames()
        {
            Assert.DoesNotThrow(() => Subject.ValidateServiceName("VULCAN"));
            Assert.DoesNotThrow(() => Subject.ValidateServiceName(new string('s', 127)));
            Assert.Throws<InvalidSubjectException>(() => Subject.ValidateServiceName(new string('s', 128)));
            Assert.AreEqual("invalid service name `A.B`: a service name is a single token (no `.`)",
                            Assert.Throws<InvalidSubjectException>(() => Subject.ValidateServiceName("A.B")).Message);
            Assert.AreEqual("invalid service name `A..B`: empty token at position 2",
                            Assert.Throws<InvalidSubjectException>(() => Subject.ValidateServiceName("A..B")).Message);
            Assert.Throws<InvalidSubjectException>(() => Subject.ValidateServiceName("*"));
            Assert.Throws<InvalidSubjectException>(() => Subject.ValidateServiceName(""));
        }

        [Test]
        public void ReplySubjectsMayBeEmptyButNotWildcards()
        {
            Assert.DoesNotThrow(() => Subject.ValidateReplySubject(null));
            Assert.DoesNotThrow(() => Subject.ValidateReplySubject(""));
            Assert.DoesNotThrow(() => Subject.ValidateReplySubject("_INBOX.abc.1"));
            Assert.Throws<InvalidSubjectException>(() => Subject.ValidateReplySubject("_INBOX.abc.*"));
        }

        [TestCase("A.B", "A.B", true)]
        [TestCase("A.B", "A.b", false)]
        [TestCase("A.B", "A.B.C", false)]
        [TestCase("A.B.C", "A.B", false)]
        [TestCase("A.*", "A.B", true)]
        [TestCase("A.*", "A.B.C", false)]
        [TestCase("A.*", "A", false)]
        [TestCase("*.B", "A.B", true)]
        [TestCase("A.>", "A.B", true)]
        [TestCase("A.>", "A.B.C", true)]
        [TestCase("A.>", "A", false)]
        [TestCase(">", "A", true)]
        [TestCase(">", "A.B.C", true)]
        [TestCase(">", "_INBOX.x.1", true)]
        [TestCase("*.*", "A.B", true)]
        [TestCase("*.*", "A", false)]
        [TestCase("PRICES.*.>", "PRICES.IBM.NYSE", true)]
        [TestCase("PRICES.*.>", "PRICES.IBM", false)]
        [TestCase("AB.C", "A.BC", false)]
        public void Matching(string pattern, string subject, bool expected)
        {
            Assert.AreEqual(expected, Subject.Matches(pattern, subject));
        }
    }
}
