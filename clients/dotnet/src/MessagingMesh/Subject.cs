using System;

namespace MessagingMesh
{
    /// <summary>
    /// The subject grammar (SPEC §6.1, Rendezvous rules): validation and matching.
    /// </summary>
    /// <remarks>
    /// <list type="bullet">
    /// <item>A subject is 1 to 255 bytes of UTF-8, split by <c>.</c> into non-empty tokens.</item>
    /// <item>No token contains a Unicode White_Space character or a control character (Cc).</item>
    /// <item><c>*</c> as a whole token matches exactly one token; <c>&gt;</c> as a whole token,
    /// only as the last token, matches one or more tokens. A token that mixes a wildcard with other
    /// characters (<c>ab*</c>) is invalid, not a literal.</item>
    /// <item>Subjects one publishes to, and non-empty reply subjects, contain no wildcards.</item>
    /// <item>A service name is a single token of 1 to 127 bytes without wildcards.</item>
    /// </list>
    /// Every failure is an <see cref="InvalidSubjectException"/> naming the offending token.
    /// </remarks>
    public static class Subject
    {
        /// <summary>Longest subject, in UTF-8 bytes.</summary>
        public const int MaxLength = 255;

        /// <summary>Longest service name, in UTF-8 bytes.</summary>
        public const int MaxServiceNameLength = 127;

        /// <summary>Longest client name, in UTF-8 bytes.</summary>
        public const int MaxClientNameLength = 255;

        /// <summary>Checks a subject to publish to (no wildcards).</summary>
        public static void ValidateSubject(string subject)
        {
            Check("subject", subject, MaxLength, false);
        }

        /// <summary>Checks a subscription pattern (wildcards allowed).</summary>
        public static void ValidatePattern(string pattern)
        {
            Check("pattern", pattern, MaxLength, true);
        }

        /// <summary>Checks a reply subject: null or empty (no reply), or a valid subject.</summary>
        public static void ValidateReplySubject(string replySubject)
        {
            if (!string.IsNullOrEmpty(replySubject)) Check("reply subject", replySubject, MaxLength, false);
        }

        /// <summary>Checks a service name: one token, 1 to 127 bytes, no wildcard.</summary>
        public static void ValidateServiceName(string name)
        {
            // An empty token is reported first, as for subjects; then a name of several tokens.
            Check("service name", name, MaxServiceNameLength, false);
            if (name.IndexOf('.') >= 0)
            {
                throw new InvalidSubjectException("service name", name,
                                                  "a service name is a single token (no `.`)", 0, null);
            }
        }

        /// <summary>Whether <paramref name="subject"/> is a valid subject to publish to.</summary>
        public static bool IsValidSubject(string subject)
        {
            return Scan(subject, MaxLength, false) == null;
        }

        /// <summary>Whether <paramref name="pattern"/> is a valid subscription pattern.</summary>
        public static bool IsValidPattern(string pattern)
        {
            return Scan(pattern, MaxLength, true) == null;
        }

        /// <summary>
        /// Whether <paramref name="pattern"/> matches <paramref name="subject"/>: byte-exact and
        /// case-sensitive, <c>*</c> for one token, a final <c>&gt;</c> for one or more. Both are
        /// assumed valid.
        /// </summary>
        public static bool Matches(string pattern, string subject)
        {
            if (pattern == null) throw new ArgumentNullException("pattern");
            if (subject == null) throw new ArgumentNullException("subject");
            int p = 0;
            int s = 0;
            while (true)
            {
                bool patternDone = p > pattern.Length;
                bool subjectDone = s > subject.Length;
                if (patternDone || subjectDone) return patternDone && subjectDone;
                int pEnd = pattern.IndexOf('.', p);
                if (pEnd < 0) pEnd = pattern.Length;
                int sEnd = subject.IndexOf('.', s);
                if (sEnd < 0) sEnd = subject.Length;
                int pLength = pEnd - p;
                if (pLength == 1 && pattern[p] == '>') return true;
                if (!(pLength == 1 && pattern[p] == '*'))
                {
                    if (pLength != sEnd - s
                        || string.CompareOrdinal(pattern, p, subject, s, pLength) != 0)
                    {
                        return false;
                    }
                }
                p = pEnd + 1;
                s = sEnd + 1;
            }
        }

        private static void Check(string what, string subject, int max, bool wildcardsAllowed)
        {
            var error = Scan(subject, max, wildcardsAllowed, what);
            if (error != null) throw error;
        }

        /// <summary>
        /// The single pass behind every validator: null when valid, else the error. The rules are
        /// checked in the order the Rust implementation checks them, so that the same mistake
        /// gets the same text in every language: empty, too long (UTF-8 bytes), then token by
        /// token — a bad character where it is met, an empty token, a <c>&gt;</c> that is not
        /// last or a token mixing a wildcard with other characters at the token's end — and
        /// last, for subjects that must be literal, the first wildcard.
        /// </summary>
        private static InvalidSubjectException Scan(string subject, int max, bool wildcardsAllowed,
                                                    string what = "subject")
        {
            if (subject == null) throw new ArgumentNullException("subject");
            if (subject.Length == 0)
            {
                return new InvalidSubjectException(what, subject, "subject is empty", 0, null);
            }
            int bytes = Utf8.ByteCount(subject);
            if (bytes > max)
            {
                return new InvalidSubjectException(
                    what, subject, bytes + " bytes long; the maximum is " + max, 0, null);
            }
            int position = 1;
            int tokenStart = 0;
            int firstWildcard = 0;
            bool tokenHasWildcardChar = false;
            for (int i = 0; i <= subject.Length; i++)
            {
                if (i == subject.Length || subject[i] == '.')
                {
                    int length = i - tokenStart;
                    if (length == 0)
                    {
                        return new InvalidSubjectException(what, subject, "empty token at position " + position,
                                                           position, "");
                    }
                    char first = subject[tokenStart];
                    bool isWildcard = length == 1 && (first == '*' || first == '>');
                    if (length == 1 && first == '>' && i != subject.Length)
                    {
                        return Token(what, subject, position, tokenStart,
                                     "`>` at token " + position + " is not the last token");
                    }
                    if (!isWildcard && tokenHasWildcardChar)
                    {
                        return Token(what, subject, position, tokenStart,
                                     "token " + position + " mixes a wildcard with other characters");
                    }
                    if (isWildcard && firstWildcard == 0) firstWildcard = position;
                    position++;
                    tokenStart = i + 1;
                    tokenHasWildcardChar = false;
                    continue;
                }
                int c = subject[i];
                if (char.IsHighSurrogate(subject, i) && i + 1 < subject.Length
                    && char.IsLowSurrogate(subject, i + 1))
                {
                    c = char.ConvertToUtf32(subject[i], subject[i + 1]);
                    i++;
                }
                else if (char.IsSurrogate(subject[i]))
                {
                    // A lone surrogate has no UTF-8 form.
                    return new InvalidSubjectException(what, subject, "not valid UTF-8", 0, null);
                }
                if (c == '*' || c == '>') tokenHasWildcardChar = true;
                // ASCII controls (TAB included) are reported as controls; beyond ASCII, White_Space
                // is checked first (U+0085 is both), as the Rust implementation does.
                if (c < 0x20 || c == 0x7F)
                {
                    return Token(what, subject, position, tokenStart,
                                 "token " + position + " contains a control character");
                }
                if (IsWhiteSpace(c))
                {
                    return Token(what, subject, position, tokenStart, "token " + position + " contains white space");
                }
                if (c >= 0x80 && c <= 0x9F)
                {
                    return Token(what, subject, position, tokenStart,
                                 "token " + position + " contains a control character");
                }
            }
            if (!wildcardsAllowed && firstWildcard > 0)
            {
                return Token(what, subject, firstWildcard, TokenStart(subject, firstWildcard),
                             "wildcard at token " + firstWildcard + " is not allowed here");
            }
            return null;
        }

        /// <summary>Where token <paramref name="position"/> (from 1) starts.</summary>
        private static int TokenStart(string subject, int position)
        {
            int start = 0;
            for (int token = 1; token < position; token++) start = subject.IndexOf('.', start) + 1;
            return start;
        }

        private static InvalidSubjectException Token(string what, string subject, int position, int tokenStart,
                                                     string reason)
        {
            int end = subject.IndexOf('.', tokenStart);
            if (end < 0) end = subject.Length;
            return new InvalidSubjectException(what, subject, reason, position,
                                               subject.Substring(tokenStart, end - tokenStart));
        }

        /// <summary>
        /// The Unicode White_Space property, spelled out: <see cref="char.IsWhiteSpace(char)"/>
        /// follows the runtime's Unicode tables, which differ between runtimes (U+180E was white
        /// space before Unicode 6.3), and the grammar must not.
        /// </summary>
        private static bool IsWhiteSpace(int c)
        {
            if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
            if (c < 0x85) return false;
            return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A)
                   || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
        }
    }
}
