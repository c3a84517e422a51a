using System;
using System.Collections.Generic;
using System.IO;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace MessagingMesh
{
    // TLS to the gateway (docs/security.md): SslStream over the socket, the gateway's certificate
    // checked against the configured CA (or the system's), an optional client certificate.
    public sealed partial class Connection
    {
        /// <summary>Completes a TLS handshake over <paramref name="opened"/>; throws
        /// <see cref="ConnectionClosedException"/> with the reason when it fails.</summary>
        private SslStream StartTls(Socket opened)
        {
            var trusted = parameters.TlsCaFile != null ? LoadCertificates(parameters.TlsCaFile) : null;
            var ssl = new SslStream(new NetworkStream(opened, false), false,
                                    (sender, certificate, chain, errors) =>
                                        ValidateGateway(certificate, errors, trusted));
            var clientCertificates = new X509CertificateCollection();
            if (parameters.TlsClientCertificate != null) clientCertificates.Add(parameters.TlsClientCertificate);
            opened.ReceiveTimeout = parameters.AckTimeoutMs;
            opened.SendTimeout = parameters.AckTimeoutMs;
            try
            {
                ssl.AuthenticateAsClient(parameters.TlsServerName ?? parameters.GatewayHost, clientCertificates,
                                         SslProtocols.Tls12, false);
            }
            catch (Exception exception)
            {
                // NotSupportedException: Mono cannot read some certificates (EC keys, say).
                if (!(exception is IOException || exception is AuthenticationException
                      || exception is SocketException || exception is ObjectDisposedException
                      || exception is NotSupportedException))
                {
                    throw;
                }
                ssl.Dispose();
                throw new ConnectionClosedException("TLS handshake with the gateway " + Describe()
                                                    + " failed (is TLS on at that port, and is its certificate "
                                                    + "trusted?): " + exception.Message, exception);
            }
            finally
            {
                opened.SendTimeout = 0;
            }
            return ssl;
        }

        /// <summary>The gateway's certificate is good when the system trusts it, or, with a CA
        /// file, when it chains to one of those CAs and carries the expected name.</summary>
        private static bool ValidateGateway(X509Certificate certificate, SslPolicyErrors errors,
                                            List<X509Certificate2> trusted)
        {
            if (errors == SslPolicyErrors.None) return true;
            if (trusted == null || certificate == null) return false;
            if ((errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None) return false;
            using (var chain = new X509Chain())
            {
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                chain.ChainPolicy.VerificationFlags = X509VerificationFlags.AllowUnknownCertificateAuthority;
                foreach (var ca in trusted) chain.ChainPolicy.ExtraStore.Add(ca);
                if (!chain.Build(new X509Certificate2(certificate))) return false;
                var root = chain.ChainElements[chain.ChainElements.Count - 1].Certificate;
                foreach (var ca in trusted)
                {
                    if (string.Equals(root.Thumbprint, ca.Thumbprint, StringComparison.OrdinalIgnoreCase)) return true;
                }
                return false;
            }
        }

        /// <summary>Every certificate in a PEM file.</summary>
        internal static List<X509Certificate2> LoadCertificates(string path)
        {
            const string Begin = "-----BEGIN CERTIFICATE-----";
            const string End = "-----END CERTIFICATE-----";
            var text = File.ReadAllText(path);
            var certificates = new List<X509Certificate2>();
            int at = 0;
            while (true)
            {
                int start = text.IndexOf(Begin, at, StringComparison.Ordinal);
                if (start < 0) break;
                int stop = text.IndexOf(End, start, StringComparison.Ordinal);
                if (stop < 0) break;
                var base64 = text.Substring(start + Begin.Length, stop - start - Begin.Length);
                certificates.Add(new X509Certificate2(Convert.FromBase64String(base64)));
                at = stop + End.Length;
            }
            if (certificates.Count == 0)
            {
                throw new ArgumentException("TlsCaFile " + path + " holds no PEM certificate");
            }
            return certificates;
        }
    }
}
