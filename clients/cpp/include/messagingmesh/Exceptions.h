// Typed exceptions. Every failure of the library is a MessagingMesh::Exception; catch the
// subclasses for the cases an application handles differently.
#pragma once

#include <stdexcept>
#include <string>

namespace MessagingMesh {

/// Base of every exception the library throws. getStatus() is the C API's status code.
class Exception : public std::runtime_error {
public:
    Exception(int status, const std::string& what) : std::runtime_error(what), status_(status) {}
    /// The C API status code (mm_status) behind this exception.
    int getStatus() const noexcept { return status_; }

private:
    int status_;
};

/// No reply (or flush confirmation) arrived within the timeout.
class TimeoutException : public Exception {
public:
    using Exception::Exception;
};

/// Nobody is subscribed to a request's subject (MM/2 gateways say so at once).
class NoRespondersException : public Exception {
public:
    using Exception::Exception;
};

/// Connecting to the gateway failed (unreachable, refused, handshake timeout).
class ConnectionException : public Exception {
public:
    using Exception::Exception;
};

/// The connection to the gateway is down (it is reconnecting).
class DisconnectedException : public Exception {
public:
    using Exception::Exception;
};

/// The connection is closed.
class ClosedException : public Exception {
public:
    using Exception::Exception;
};

/// A subject, reply subject, pattern or service name breaks the subject grammar.
class InvalidSubjectException : public Exception {
public:
    using Exception::Exception;
};

/// A message has no field with the name asked for.
class FieldNotFoundException : public Exception {
public:
    using Exception::Exception;
};

/// A field exists but has another type than the one asked for (values are never converted).
class WrongFieldTypeException : public Exception {
public:
    using Exception::Exception;
};

/// Bytes that do not decode as a message or frame.
class DecodeException : public Exception {
public:
    using Exception::Exception;
};

/// A message that cannot be encoded (nested too deep, a value too long, a frame too large).
class EncodeException : public Exception {
public:
    using Exception::Exception;
};

/// Disconnected, and the messages buffered meanwhile already fill the reconnect buffer.
class ReconnectBufferFullException : public Exception {
public:
    using Exception::Exception;
};

/// An argument out of range (or a null or invalid object where one is required).
class InvalidArgumentException : public Exception {
public:
    using Exception::Exception;
};

/// processMessageQueue() on a connection that calls back on its own thread.
class NotQueueModeException : public Exception {
public:
    using Exception::Exception;
};

}  // namespace MessagingMesh
