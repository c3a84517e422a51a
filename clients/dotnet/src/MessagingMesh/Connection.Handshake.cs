using System;
using System.Net;
using System.Net.Sockets;
using System.Threading;

namespace MessagingMesh
{
    // Opening a socket and the CONNECT/ACK handshake (SPEC §7), for the first connection and every reconnect.
    public sealed partial class Connection
    {
        private string Describe()
        {
            return parameters.GatewayHost + ":" + parameters.GatewayPort;
        }

        /// <summary>What the ACK said, plus the socket and its reader.</summary>
        private sealed class Handshake
        {
            internal Socket Socket;
            internal System.IO.Stream TlsStream;
            internal FrameReader Reader;
            internal string InboxPrefix;
            internal int ProtocolVersion;
            internal string GatewayName = "";
            internal int MaxFrame = Wire.DefaultMaxFrame;
            internal int HeartbeatMs;
        }

        private void Adopt(Handshake handshake)
        {
            socket = handshake.Socket;
            tlsStream = handshake.TlsStream;
            frameReader = handshake.Reader;
            inboxPrefix = handshake.InboxPrefix != null ? handshake.InboxPrefix + "." : ownInboxPrefix;
            protocolVersion = handshake.ProtocolVersion;
            gatewayName = handshake.GatewayName;
            gatewayMaxFrame = handshake.MaxFrame;
            gatewayHeartbeatMs = handshake.HeartbeatMs;
            Interlocked.Exchange(ref lastReceiveMs, Clock.NowMs);
        }

        /// <summary>
        /// Opens TCP (TCP_NODELAY), sends CONNECT and reads until ACK. An empty ACK means an MM/1
        /// gateway. Frames that arrive after the ACK stay in the reader's buffer.
        /// </summary>
        private Handshake OpenAndHandshake()
        {
            Socket opened = Open();
            System.IO.Stream tls = null;
            try
            {
                opened.NoDelay = true;
                if (parameters.Tls) tls = StartTls(opened);
                var connect = new WireWriter(256);
                Message options = null;
                if (parameters.ProtocolVersion >= 2)
                {
                    options = new Message()
                        .AddInt32("protocol_version", 2)
                        .AddString("client_name", LibraryName)
                        .AddInt32("heartbeat_ms", parameters.HeartbeatMs)
                        .AddBool("no_responders", parameters.NoResponders);
                    if (parameters.Token != null) options.AddString("token", parameters.Token);
                    if (parameters.User != null)
                    {
                        options.AddString("user", parameters.User).AddString("password", parameters.Password);
                    }
                }
                connect.WriteFrame(0, parameters.Service, parameters.ClientName, WireAction.Connect, options);
                if (tls != null)
                {
                    tls.Write(connect.Buffer, 0, connect.Length);
                    tls.Flush();
                }
                else
                {
                    opened.Send(connect.Buffer, 0, connect.Length, SocketFlags.None);
                }

                var reader = new FrameReader(opened, tls, parameters.MaxFrame);
                long deadline = Clock.NowMs + parameters.AckTimeoutMs;
                while (true)
                {
                    int offset;
                    int length;
                    while (reader.TryNext(out offset, out length))
                    {
                        var header = FrameHeader.Parse(reader.Buffer, offset, length);
                        if (header.Action == WireAction.Ack)
                        {
                            var handshake = ReadAck(header, reader.Buffer, offset, length);
                            handshake.Socket = opened;
                            handshake.TlsStream = tls;
                            handshake.Reader = reader;
                            opened.ReceiveTimeout = 0;
                            return handshake;
                        }
                        if (header.Action == WireAction.Error)
                        {
                            var error = ReadError(header, reader.Buffer, offset, length);
                            throw new ConnectionClosedException("the gateway refused the connection: "
                                                                + error.Message, error);
                        }
                        Logger.Debug("ignoring " + header.Action + " before ACK");
                    }
                    int left = Clock.Remaining(deadline);
                    if (left == 0) throw AckTimeout();
                    opened.ReceiveTimeout = left;
                    bool more;
                    try
                    {
                        more = reader.Fill();
                    }
                    catch (SocketException exception)
                    {
                        if (exception.SocketErrorCode == SocketError.TimedOut
                            || exception.SocketErrorCode == SocketError.WouldBlock)
                        {
                            throw AckTimeout();
                        }
                        throw;
                    }
                    catch (System.IO.IOException exception)
                    {
                        var socketError = exception.InnerException as SocketException;
                        if (socketError != null && (socketError.SocketErrorCode == SocketError.TimedOut
                                                    || socketError.SocketErrorCode == SocketError.WouldBlock))
                        {
                            throw AckTimeout();
                        }
                        throw new ConnectionClosedException("lost the gateway " + Describe()
                                                            + " during the handshake: " + exception.Message, exception);
                    }
                    if (!more)
                    {
                        throw new ConnectionClosedException("the gateway closed the connection before ACK");
                    }
                }
            }
            catch (SocketException exception)
            {
                CloseQuietly(opened);
                throw new ConnectionClosedException("lost the gateway " + Describe() + " during the handshake: "
                                                    + exception.Message, exception);
            }
            catch (Exception)
            {
                CloseQuietly(opened);
                throw;
            }
        }

        private MeshTimeoutException AckTimeout()
        {
            return new MeshTimeoutException("no ACK from the gateway " + Describe() + " within "
                                            + parameters.AckTimeoutMs + " ms");
        }

        private Socket Open()
        {
            IPAddress[] addresses;
            try
            {
                IPAddress literal;
                addresses = IPAddress.TryParse(parameters.GatewayHost, out literal)
                    ? new[] { literal }
                    : Dns.GetHostAddresses(parameters.GatewayHost);
            }
            catch (SocketException exception)
            {
                throw new ConnectionClosedException("cannot resolve " + parameters.GatewayHost + ": "
                                                    + exception.Message, exception);
            }
            Exception last = null;
            foreach (var address in addresses)
            {
                var candidate = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    var attempt = candidate.BeginConnect(address, parameters.GatewayPort, null, null);
                    if (!attempt.AsyncWaitHandle.WaitOne(parameters.ConnectTimeoutMs))
                    {
                        throw new MeshTimeoutException("connecting to " + address + ":" + parameters.GatewayPort
                                                       + " timed out");
                    }
                    candidate.EndConnect(attempt);
                    return candidate;
                }
                catch (Exception exception)
                {
                    CloseQuietly(candidate);
                    last = exception;
                }
            }
            throw new ConnectionClosedException("cannot connect to the gateway " + Describe() + ": "
                                                + (last != null ? last.Message : "no address"), last);
        }

        private static Handshake ReadAck(FrameHeader header, byte[] frame, int offset, int length)
        {
            var handshake = new Handshake { ProtocolVersion = 1 };
            var body = header.DecodeBody(frame, offset, length);
            int version;
            if (body.TryGetInt32("protocol_version", out version) && version >= 2)
            {
                handshake.ProtocolVersion = 2;
                string name;
                if (body.TryGetString("gateway_name", out name)) handshake.GatewayName = name;
                uint maxFrame;
                if (body.TryGetUInt32("max_frame", out maxFrame) && maxFrame >= Wire.MinFrameSize)
                {
                    handshake.MaxFrame = (int)Math.Min(maxFrame, int.MaxValue);
                }
                int heartbeat;
                if (body.TryGetInt32("heartbeat_ms", out heartbeat) && heartbeat > 0)
                {
                    handshake.HeartbeatMs = heartbeat;
                }
                string assigned;
                if (body.TryGetString("inbox_prefix", out assigned) && assigned.StartsWith("_INBOX.", StringComparison.Ordinal))
                {
                    handshake.InboxPrefix = assigned;
                }
            }
            return handshake;
        }

        private static GatewayErrorException ReadError(FrameHeader header, byte[] frame, int offset, int length)
        {
            string code = "";
            string text = "";
            try
            {
                var body = header.DecodeBody(frame, offset, length);
                body.TryGetString("code", out code);
                body.TryGetString("text", out text);
            }
            catch (DecodeException)
            {
                text = "(undecodable ERROR body)";
            }
            return new GatewayErrorException(code ?? "", text ?? "", header.Subject, header.SubscriptionId);
        }

        private static void CloseQuietly(Socket target)
        {
            if (target == null) return;
            try
            {
                target.Shutdown(SocketShutdown.Both);
            }
            catch (Exception)
            {
                // Not connected, or already closed: nothing to shut down.
            }
            try
            {
                target.Close();
            }
            catch (Exception)
            {
                // Closing twice is harmless.
            }
        }
    }
}
