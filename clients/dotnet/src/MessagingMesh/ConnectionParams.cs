using System;

namespace MessagingMesh
{
    /// <summary>How messages for subscriptions reach their callbacks (SPEC §6.4).</summary>
    public enum DispatchMode
    {
        /// <summary>
        /// A library thread, one per connection, calls subscription callbacks in arrival order.
        /// </summary>
        CallbackThread,

        /// <summary>
        /// Messages wait in a queue until the application calls
        /// <see cref="Connection.ProcessMessageQueue(int, int)"/>, which runs their callbacks on the
        /// calling thread. Request replies never wait in the queue.
        /// </summary>
        Queue,
    }

    /// <summary>
    /// Everything a <see cref="Connection"/> needs to know, with a default for every value: the
    /// gateway at localhost:5050 and the service <c>DEFAULT</c>, as for the other clients and the
    /// <c>mm</c> tool. The connection copies the values when it is created.
    /// </summary>
    public sealed class ConnectionParams
    {
        /// <summary>The service a connection joins unless told otherwise: <c>DEFAULT</c>.</summary>
        public const string DefaultService = "DEFAULT";

        /// <summary>The gateway's default TCP port: 5050.</summary>
        public const int DefaultPort = 5050;

        /// <summary>Creates parameters with every default set.</summary>
        public ConnectionParams()
        {
            GatewayHost = "localhost";
            GatewayPort = DefaultPort;
            Service = DefaultService;
            ClientName = "";
            DispatchMode = DispatchMode.CallbackThread;
            ProtocolVersion = 2;
            HeartbeatMs = 5000;
            NoResponders = true;
            Token = null;
            User = null;
            Password = null;
            Tls = false;
            TlsCaFile = null;
            TlsClientCertificate = null;
            TlsServerName = null;
            ConnectTimeoutMs = 10000;
            AckTimeoutMs = 30000;
            Reconnect = true;
            ReconnectDelayMs = 100;
            ReconnectMaxDelayMs = 2000;
            MaxReconnectAttempts = -1;
            PendingMessageLimit = 65536;
            PendingByteLimit = 64L * 1024 * 1024;
            MaxFrame = 64 * 1024 * 1024;
            MaxOutboundBytes = 8 * 1024 * 1024;
            RequestTimeoutMs = 10000;
            CloseTimeoutMs = 2000;
        }

        /// <summary>Host name or IP address of the gateway. Default "localhost".</summary>
        public string GatewayHost { get; set; }

        /// <summary>TCP port of the gateway. Default 5050.</summary>
        public int GatewayPort { get; set; }

        /// <summary>The service to join: one token, 1 to 127 bytes, no wildcard. Default
        /// <c>DEFAULT</c>.</summary>
        public string Service { get; set; }

        /// <summary>Name of this client, informational (up to 255 bytes). Default "".</summary>
        public string ClientName { get; set; }

        /// <summary>How subscription messages are dispatched. Default <see cref="MessagingMesh.DispatchMode.CallbackThread"/>.</summary>
        public DispatchMode DispatchMode { get; set; }

        /// <summary>
        /// 2 (the default) asks for MM/2 and falls back to MM/1 when the gateway answers with an
        /// empty ACK; 1 connects as an MM/1 client (empty CONNECT body, no MM/2 features).
        /// </summary>
        public int ProtocolVersion { get; set; }

        /// <summary>
        /// MM/2: send a PING whenever nothing was sent for this long, and announce it so the
        /// gateway can detect a dead client. 0 disables. Default 5000.
        /// </summary>
        public int HeartbeatMs { get; set; }

        /// <summary>MM/2: ask the gateway for NO_RESPONDERS, so requests to subjects nobody
        /// subscribes to fail at once. Default true.</summary>
        public bool NoResponders { get; set; }

        /// <summary>MM/2: bearer token, for services with users. Default none.</summary>
        public string Token { get; set; }

        /// <summary>MM/2: user name, for services with users (with <see cref="Password"/>).
        /// Default none.</summary>
        public string User { get; set; }

        /// <summary>MM/2: password of <see cref="User"/>. Send it over TLS (<see cref="Tls"/>).
        /// Default none.</summary>
        public string Password { get; set; }

        /// <summary>Connect over TLS (<c>SslStream</c>). Default false.</summary>
        public bool Tls { get; set; }

        /// <summary>
        /// TLS: a PEM file with the CA certificates that may sign the gateway's certificate. Null
        /// (the default) trusts the system's CAs.
        /// </summary>
        public string TlsCaFile { get; set; }

        /// <summary>TLS: a client certificate (with its private key) to present, for gateways
        /// that verify clients. Default none.</summary>
        public System.Security.Cryptography.X509Certificates.X509Certificate2 TlsClientCertificate { get; set; }

        /// <summary>TLS: the name the gateway's certificate must carry. Default
        /// <see cref="GatewayHost"/>.</summary>
        public string TlsServerName { get; set; }

        /// <summary>Timeout for the TCP connection to be established. Default 10000.</summary>
        public int ConnectTimeoutMs { get; set; }

        /// <summary>How long to wait for the gateway's ACK after CONNECT. Default 30000.</summary>
        public int AckTimeoutMs { get; set; }

        /// <summary>Reconnect (and resubscribe) after losing the gateway. Default true.</summary>
        public bool Reconnect { get; set; }

        /// <summary>Delay before the first reconnect attempt; doubles (with jitter) up to
        /// <see cref="ReconnectMaxDelayMs"/>. Default 100.</summary>
        public int ReconnectDelayMs { get; set; }

        /// <summary>Longest delay between reconnect attempts. Default 2000.</summary>
        public int ReconnectMaxDelayMs { get; set; }

        /// <summary>Attempts before giving up and closing the connection; -1 (default) never gives up.</summary>
        public int MaxReconnectAttempts { get; set; }

        /// <summary>Default pending limit of a subscription, in messages. Default 65536.</summary>
        public int PendingMessageLimit { get; set; }

        /// <summary>Default pending limit of a subscription, in bytes. Default 64 MiB.</summary>
        public long PendingByteLimit { get; set; }

        /// <summary>Largest frame accepted from the gateway. Default 64 MiB.</summary>
        public int MaxFrame { get; set; }

        /// <summary>
        /// Bytes that may wait in the outbound buffer. When connected, a publisher that finds it
        /// full waits until the socket drains it; while reconnecting, publishing into a full buffer
        /// throws <see cref="NotConnectedException"/>. Default 8 MiB (a single larger message is
        /// always accepted into an empty buffer).
        /// </summary>
        public int MaxOutboundBytes { get; set; }

        /// <summary>Timeout of <see cref="Connection.SendRequest(string, Message)"/> and
        /// <see cref="Connection.Flush()"/> when none is given. Default 10000.</summary>
        public int RequestTimeoutMs { get; set; }

        /// <summary>How long <see cref="Connection.Dispose"/> waits for queued frames to be written.
        /// Default 2000.</summary>
        public int CloseTimeoutMs { get; set; }

        internal ConnectionParams Copy()
        {
            return (ConnectionParams)MemberwiseClone();
        }

        internal void Validate()
        {
            if (string.IsNullOrEmpty(GatewayHost)) throw new ArgumentException("GatewayHost is required");
            if (GatewayPort <= 0 || GatewayPort > 65535) throw new ArgumentException("GatewayPort must be 1 to 65535");
            if (Service == null) throw new ArgumentException("Service is required");
            Subject.ValidateServiceName(Service);
            if (ClientName == null) ClientName = "";
            if (Utf8.ByteCount(ClientName) > Subject.MaxClientNameLength)
            {
                throw new ArgumentException("ClientName is longer than 255 bytes");
            }
            if (ProtocolVersion != 1 && ProtocolVersion != 2) throw new ArgumentException("ProtocolVersion must be 1 or 2");
            if ((User == null) != (Password == null)) throw new ArgumentException("User and Password go together");
            if (TlsCaFile != null && !System.IO.File.Exists(TlsCaFile))
            {
                throw new ArgumentException("TlsCaFile " + TlsCaFile + " does not exist");
            }
            if (HeartbeatMs < 0) throw new ArgumentException("HeartbeatMs must not be negative");
            if (ConnectTimeoutMs <= 0 || AckTimeoutMs <= 0) throw new ArgumentException("timeouts must be positive");
            if (ReconnectDelayMs <= 0 || ReconnectMaxDelayMs < ReconnectDelayMs)
            {
                throw new ArgumentException("need 0 < ReconnectDelayMs <= ReconnectMaxDelayMs");
            }
            if (PendingMessageLimit <= 0 || PendingByteLimit <= 0) throw new ArgumentException("pending limits must be positive");
            if (MaxFrame < 21) throw new ArgumentException("MaxFrame must be at least 21");
            if (MaxOutboundBytes <= 0) throw new ArgumentException("MaxOutboundBytes must be positive");
            if (RequestTimeoutMs <= 0) throw new ArgumentException("RequestTimeoutMs must be positive");
            if (CloseTimeoutMs < 0) throw new ArgumentException("CloseTimeoutMs must not be negative");
        }
    }
}
