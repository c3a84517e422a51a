using System;

namespace MessagingMesh
{
    /// <summary>
    /// The base of every exception the library throws or reports through
    /// <see cref="Connection.Error"/>. Catch this to catch them all; catch a subclass to react to
    /// one kind of failure.
    /// </summary>
    public class MessagingMeshException : Exception
    {
        /// <summary>Creates the exception with a message for people.</summary>
        public MessagingMeshException(string message) : base(message) { }

        /// <summary>Creates the exception with a message and the exception that caused it.</summary>
        public MessagingMeshException(string message, Exception inner) : base(message, inner) { }
    }

    /// <summary>
    /// A request got no reply within its timeout, or a flush or the connection handshake did not
    /// complete in time. Distinct from every other error, so a caller can retry on it alone.
    /// </summary>
    public class MeshTimeoutException : MessagingMeshException
    {
        /// <summary>Creates the exception.</summary>
        public MeshTimeoutException(string message) : base(message) { }
    }

    /// <summary>
    /// A request was sent to a subject nobody is subscribed to: the gateway answered
    /// NO_RESPONDERS at once (MM/2 only), so the request failed without waiting for its timeout.
    /// </summary>
    public class NoRespondersException : MessagingMeshException
    {
        /// <summary>Creates the exception for a request to <paramref name="subject"/>.</summary>
        public NoRespondersException(string subject)
            : base("no responders for `" + subject + "`")
        {
            Subject = subject;
        }

        /// <summary>The subject the request was sent to.</summary>
        public string Subject { get; private set; }
    }

    /// <summary>
    /// A subject, pattern, reply subject or service name breaks the subject grammar, or a plain
    /// publish targets the gateway's reserved <c>_MM.</c> subjects. The message is the same text
    /// the Rust, C and C++ clients give for the same mistake (docs/protocol.md, "Error texts"),
    /// e.g. <c>invalid subject `A..B`: empty token at position 2</c>.
    /// </summary>
    public class InvalidSubjectException : MessagingMeshException
    {
        /// <summary>Creates the exception for a subject (what = "subject").</summary>
        public InvalidSubjectException(string subject, string reason, int position, string token)
            : this("subject", subject, reason, position, token)
        {
        }

        /// <summary>
        /// Creates the exception. <paramref name="what"/> is what was checked: "subject",
        /// "pattern", "reply subject" or "service name"; <paramref name="reason"/> the grammar rule
        /// broken, e.g. "empty token at position 2".
        /// </summary>
        public InvalidSubjectException(string what, string subject, string reason, int position, string token)
            : base(Describe(what, subject, reason, token))
        {
            What = what;
            Subject = subject;
            Reason = reason;
            Position = position;
            Token = token;
        }

        private InvalidSubjectException(string message, string subject)
            : base(message)
        {
            What = "subject";
            Subject = subject;
            Reason = "reserved to the gateway";
            Position = 1;
            Token = "_MM";
        }

        /// <summary>A plain publish to the gateway's reserved <c>_MM.</c> subjects.</summary>
        internal static InvalidSubjectException Reserved(string subject)
        {
            return new InvalidSubjectException(
                "subject `" + subject + "` is reserved to the gateway (only requests may be sent there)", subject);
        }

        /// <summary>What was checked: "subject", "pattern", "reply subject" or "service name".</summary>
        public string What { get; private set; }

        /// <summary>The subject that was rejected.</summary>
        public string Subject { get; private set; }

        /// <summary>Why it was rejected, e.g. "empty token at position 2" or "token 2 contains
        /// white space".</summary>
        public string Reason { get; private set; }

        /// <summary>The position (from 1) of the offending token, or 0 when the error is about
        /// the whole subject (empty, too long, not UTF-8, several tokens in a service name).</summary>
        public int Position { get; private set; }

        /// <summary>The offending token, or null when the error is about the whole subject.</summary>
        public string Token { get; private set; }

        private static string Describe(string what, string subject, string reason, string token)
        {
            var text = "invalid " + what + " `" + subject + "`: " + reason;
            return string.IsNullOrEmpty(token) ? text : text + " (`" + token + "`)";
        }
    }

    /// <summary>
    /// Bytes received from the network could not be decoded: a negative or oversized length, an
    /// unknown field type, a Message nested deeper than 64 levels, a truncated value. Decoding
    /// never allocates memory sized by an untrusted length.
    /// </summary>
    public class DecodeException : MessagingMeshException
    {
        /// <summary>Creates the exception for a problem found at byte <paramref name="offset"/>.</summary>
        public DecodeException(string message, int offset)
            : base(message + " at byte " + offset)
        {
            Offset = offset;
        }

        /// <summary>Offset of the problem, counted from the start of the buffer being decoded.</summary>
        public int Offset { get; private set; }
    }

    /// <summary>
    /// A message cannot be encoded: it is nested deeper than 64 levels (which includes a message
    /// that contains itself), or it is larger than a frame may be.
    /// </summary>
    public class EncodeException : MessagingMeshException
    {
        /// <summary>Creates the exception.</summary>
        public EncodeException(string message) : base(message) { }
    }

    /// <summary>
    /// Reading a field by name failed: there is no such field (<see cref="FieldNotFoundException"/>)
    /// or it has another type (<see cref="FieldTypeException"/>).
    /// </summary>
    public class FieldException : MessagingMeshException
    {
        /// <summary>Creates the exception.</summary>
        public FieldException(string fieldName, string message) : base(message)
        {
            FieldName = fieldName;
        }

        /// <summary>The name that was asked for.</summary>
        public string FieldName { get; private set; }
    }

    /// <summary>No field of the message has the requested name.</summary>
    public class FieldNotFoundException : FieldException
    {
        /// <summary>Creates the exception.</summary>
        public FieldNotFoundException(string fieldName)
            : base(fieldName, "no field named `" + fieldName + "`") { }
    }

    /// <summary>
    /// The field was read as a type it does not have. Getters never convert: an int32 field read
    /// as int64 or double is this error, naming the field and both types.
    /// </summary>
    public class FieldTypeException : FieldException
    {
        /// <summary>Creates the exception.</summary>
        public FieldTypeException(string fieldName, FieldType expected, FieldType actual)
            : base(fieldName, "field `" + fieldName + "` is " + FieldTypes.Name(actual) + ", not "
                   + FieldTypes.Name(expected))
        {
            Expected = expected;
            Actual = actual;
        }

        /// <summary>The type that was asked for.</summary>
        public FieldType Expected { get; private set; }

        /// <summary>The type the field has.</summary>
        public FieldType Actual { get; private set; }
    }

    /// <summary>
    /// The connection is closed (disposed, or given up after reconnect attempts ran out), or was
    /// never established.
    /// </summary>
    public class ConnectionClosedException : MessagingMeshException
    {
        /// <summary>Creates the exception.</summary>
        public ConnectionClosedException(string message) : base(message) { }

        /// <summary>Creates the exception with its cause.</summary>
        public ConnectionClosedException(string message, Exception inner) : base(message, inner) { }
    }

    /// <summary>
    /// The gateway sent an ERROR frame (MM/2). Reported through <see cref="Connection.Error"/>.
    /// </summary>
    public class GatewayErrorException : MessagingMeshException
    {
        /// <summary>Creates the exception.</summary>
        public GatewayErrorException(string code, string text, string subject, uint subscriptionId)
            : base("gateway error " + code + (subject.Length > 0 ? " for \"" + subject + "\"" : "")
                   + ": " + text)
        {
            Code = code;
            Text = text;
            Subject = subject;
            SubscriptionId = subscriptionId;
        }

        /// <summary>The stable error code, e.g. <c>INVALID_SUBJECT</c> or <c>SLOW_CONSUMER</c>.</summary>
        public string Code { get; private set; }

        /// <summary>The gateway's explanation, for people.</summary>
        public string Text { get; private set; }

        /// <summary>The subject concerned, or "".</summary>
        public string Subject { get; private set; }

        /// <summary>The subscription concerned, or 0.</summary>
        public uint SubscriptionId { get; private set; }
    }

    /// <summary>
    /// A subscription's pending limit (messages or bytes waiting for dispatch) was exceeded, so
    /// messages for it are being dropped. Reported once per overflow episode through
    /// <see cref="Connection.Error"/>; <see cref="Subscription.Dropped"/> counts every drop.
    /// </summary>
    public class PendingLimitException : MessagingMeshException
    {
        /// <summary>Creates the exception.</summary>
        public PendingLimitException(Subscription subscription)
            : base("pending limit of subscription " + subscription.Id + " (\"" + subscription.Subject
                   + "\") exceeded: " + subscription.PendingMessageLimit + " messages / "
                   + subscription.PendingByteLimit + " bytes; dropping messages")
        {
            Subscription = subscription;
        }

        /// <summary>The subscription that is dropping messages.</summary>
        public Subscription Subscription { get; private set; }
    }
}

namespace MessagingMesh
{
    /// <summary>
    /// The connection is between gateways (reconnecting) and its outbound buffer, which keeps
    /// messages published meanwhile, is full (see <see cref="ConnectionParams.MaxOutboundBytes"/>).
    /// </summary>
    public class NotConnectedException : MessagingMeshException
    {
        /// <summary>Creates the exception.</summary>
        public NotConnectedException(string message) : base(message) { }
    }
}
