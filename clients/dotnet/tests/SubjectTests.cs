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

        [TestCase("", 0, null, "is empty")]
        [TestCase("A..B", 2, "", "is empty")]
        [TestCase(".A", 1, "", "is empty")]
        [TestCase("A.", 2, "", "is empty")]
        [TestCase("A.b c", 2, "b c", "white space")]
        [TestCase("A.b\u00a0c", 2, "b\u00a0c", "white space")]
        [TestCase("A.b\u3000c", 2, "b\u3000c", "white space")]
        [TestCase("A.b\u2028", 2, "b\u2028", "white space")]
        [TestCase("A.b\tc", 2, "b\tc", "control character")]
        [TestCase("x\u0000", 1, "x\u0000", "control character")]
        [TestCase("A.\u007f", 2, "\u007f", "control character")]
        [TestCase("A.\u0085", 2, "\u0085", "white space")]
        [TestCase("A.\u0090", 2, "\u0090", "control character")]
        [TestCase("A.ab*", 2, "ab*", "mixes a wildcard")]
        [TestCase(">x.B", 1, ">x", "mixes a wildcard")]
        [TestCase("A.>.B", 2, ">", "only allowed as the last token")]
        public void InvalidPatternsNameTheOffendingToken(string pattern, int position, string token, string reason)
        {
            Assert.IsFalse(Subject.IsValidPattern(pattern));
            var error = Assert.Throws<InvalidSubjectException>(() => Subject.ValidatePattern(pattern));
            Assert.AreEqual(position, error.Position);
            Assert.AreEqual(token, error.Token);
            StringAssert.Contains(reason, error.Message);
            if (position > 0)
            {
                StringAssert.Contains("token " + position + " (\"" + token + "\")", error.Message);
            }
        }

        [Test]
        public void LoneSurrogatesAreNotUtf8()
        {
            // Built at run time: attribute strings are stored as UTF-8, which cannot hold one.
            string pattern = "A." + (char)0xD800;
            var error = Assert.Throws<InvalidSubjectException>(() => Subject.ValidatePattern(pattern));
            Assert.AreEqual(2, error.Position);
            StringAssert.Contains("lone surrogate", error.Message);
            Assert.IsTrue(Subject.IsValidSubject("A." + char.ConvertFromUtf32(0x1F600)));
        }

        [Test]
        public void LengthIsCountedInUtf8Bytes()
        {
            Assert.IsTrue(Subject.IsValidSubject(new string('a', 255)));
            var error = Assert.Throws<InvalidSubjectException>(() => Subject.ValidateSubject(new string('a', 256)));
            StringAssert.Contains("256 bytes long; the maximum is 255", error.Message);
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
            StringAssert.Contains("single token", Assert.Throws<InvalidSubjectException>(() => Subject.ValidateServiceName("A.B")).Message);
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
