//! The bodies of the handshake and control frames (SPEC §5.1, §7, §8): CONNECT options, ACK
//! server info, mesh peer identity, ERROR codes, and the mesh flag of PING.
//!
//! These are ordinary Messages with agreed field names; this module gives them types so that the
//! gateway and every Rust client read and write them the same way.

use std::fmt;

use crate::{FieldType, Message};

/// The protocol version this library speaks when MM/2 is negotiated.
pub const PROTOCOL_VERSION: i32 = 2;

/// Which protocol a peer speaks, as negotiated from its CONNECT body (or an ACK's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// The base protocol: empty CONNECT/ACK bodies, no MM/2-only actions.
    Mm1,
    /// MM/2: PING/PONG, ERROR, NO_RESPONDERS, heartbeats.
    Mm2,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Mm1 => "MM/1",
            Protocol::Mm2 => "MM/2",
        })
    }
}

/// Options a client sends in its CONNECT body (SPEC §7.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectOptions {
    /// `protocol_version`: 2 for MM/2; absent (or below 2) means MM/1.
    pub protocol_version: Option<i32>,
    /// `client_name`: library and version, e.g. `rust 0.1.0`.
    pub client_name: Option<String>,
    /// `heartbeat_ms`: the client's heartbeat interval; 0 or absent = none.
    pub heartbeat_ms: i32,
    /// `no_responders`: the client wants NO_RESPONDERS.
    pub no_responders: bool,
    /// `token`: a bearer token, for services that require authentication.
    pub token: Option<String>,
    /// `user`: a user name, sent with `password` (an MM/2 extension).
    pub user: Option<String>,
    /// `password`: the user's password (an MM/2 extension). Send it only over TLS.
    pub password: Option<String>,
}

/// Something odd about a CONNECT body that does not stop the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectWarning {
    /// `protocol_version` is present but not an int32: the client is treated as MM/1.
    VersionNotInt32(FieldType),
}

impl fmt::Display for ConnectWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectWarning::VersionNotInt32(actual) => write!(
                f,
                "protocol_version is {actual}, not int32: treating the client as MM/1"
            ),
        }
    }
}

impl ConnectOptions {
    /// Options for an MM/2 client.
    pub fn mm2(client_name: impl Into<String>) -> Self {
        ConnectOptions {
            protocol_version: Some(PROTOCOL_VERSION),
            client_name: Some(client_name.into()),
            ..ConnectOptions::default()
        }
    }

    /// The negotiated protocol: MM/2 when `protocol_version` is 2 or more.
    pub fn protocol(&self) -> Protocol {
        match self.protocol_version {
            Some(version) if version >= PROTOCOL_VERSION => Protocol::Mm2,
            _ => Protocol::Mm1,
        }
    }

    /// Reads the options from a CONNECT body. Fields of unexpected types are ignored (a
    /// `protocol_version` of another type is reported as a warning).
    pub fn from_message(message: &Message) -> (ConnectOptions, Option<ConnectWarning>) {
        let warning = match message.field_type("protocol_version") {
            Some(FieldType::I32) | None => None,
            Some(other) => Some(ConnectWarning::VersionNotInt32(other)),
        };
        let options = ConnectOptions {
            protocol_version: message.try_i32("protocol_version"),
            client_name: message.try_string("client_name").map(str::to_owned),
            heartbeat_ms: message.try_i32("heartbeat_ms").unwrap_or(0).max(0),
            no_responders: message.try_bool("no_responders").unwrap_or(false),
            token: message.try_string("token").map(str::to_owned),
            user: message.try_string("user").map(str::to_owned),
            password: message.try_string("password").map(str::to_owned),
        };
        (options, warning)
    }

    /// The CONNECT body. MM/1 options give an empty body.
    pub fn to_message(&self) -> Message {
        let Some(version) = self.protocol_version else {
            return Message::new();
        };
        let mut message = Message::new().add_i32("protocol_version", version);
        if let Some(name) = &self.client_name {
            message.push("client_name", name.as_str());
        }
        message.push("heartbeat_ms", self.heartbeat_ms);
        message.push("no_responders", self.no_responders);
        if let Some(token) = &self.token {
            message.push("token", token.as_str());
        }
        if let Some(user) = &self.user {
            message.push("user", user.as_str());
        }
        if let Some(password) = &self.password {
            message.push("password", password.as_str());
        }
        message
    }
}

/// What an MM/2 ACK says about the gateway (SPEC §7.4, §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckInfo {
    /// `protocol_version`: 2.
    pub protocol_version: i32,
    /// `gateway_name`.
    pub gateway_name: String,
    /// `gateway_id`: present on mesh links only (32 lowercase hex characters).
    pub gateway_id: Option<String>,
    /// `max_frame`: the largest frame the gateway accepts.
    pub max_frame: u32,
    /// `heartbeat_ms`: the gateway's own interval; 0 = none.
    pub heartbeat_ms: i32,
    /// `inbox_prefix` (clients of a service with security on): the prefix this connection's
    /// reply inboxes must use, `_INBOX.<random>`; the client subscribes to `<prefix>.*`. An MM/2
    /// extension.
    pub inbox_prefix: Option<String>,
    /// Mesh authentication by shared secret (mesh links only; an MM/2 extension).
    pub mesh_auth: Option<MeshAuthFields>,
}

/// The challenge–response fields of CONNECT_MESH_PEER and its ACK when a mesh secret is
/// configured (an MM/2 extension; docs/protocol.md, "Authenticated mesh links").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MeshAuthFields {
    /// `auth_nonce`: fresh random bytes from the sender (32).
    pub nonce: Option<Vec<u8>>,
    /// `auth_proof`: the sender's HMAC over the transcript (32 bytes).
    pub proof: Option<Vec<u8>>,
}

impl MeshAuthFields {
    /// Reads the fields; `None` when neither is present.
    pub fn from_message(message: &Message) -> Option<MeshAuthFields> {
        let nonce = message.try_blob("auth_nonce").map(|b| b.to_vec());
        let proof = message.try_blob("auth_proof").map(|b| b.to_vec());
        (nonce.is_some() || proof.is_some()).then_some(MeshAuthFields { nonce, proof })
    }

    /// Appends the fields that are set.
    pub fn write(&self, message: &mut Message) {
        if let Some(nonce) = &self.nonce {
            message.push("auth_nonce", bytes::Bytes::from(nonce.clone()));
        }
        if let Some(proof) = &self.proof {
            message.push("auth_proof", bytes::Bytes::from(proof.clone()));
        }
    }
}

impl AckInfo {
    /// Reads an ACK body. `None` for an empty body: the peer speaks MM/1.
    pub fn from_message(message: &Message) -> Option<AckInfo> {
        if message.is_empty() {
            return None;
        }
        Some(AckInfo {
            protocol_version: message.try_i32("protocol_version").unwrap_or(1),
            gateway_name: message
                .try_string("gateway_name")
                .unwrap_or_default()
                .to_owned(),
            gateway_id: message.try_string("gateway_id").map(str::to_owned),
            max_frame: message
                .try_u32("max_frame")
                .unwrap_or(crate::DEFAULT_MAX_FRAME),
            heartbeat_ms: message.try_i32("heartbeat_ms").unwrap_or(0).max(0),
            inbox_prefix: message.try_string("inbox_prefix").map(str::to_owned),
            mesh_auth: MeshAuthFields::from_message(message),
        })
    }

    /// The ACK body sent to an MM/2 client (field order as in `ack-v2.bin`, then
    /// `inbox_prefix` when set).
    pub fn client_message(&self) -> Message {
        let mut message = Message::new()
            .add_i32("protocol_version", self.protocol_version)
            .add_string("gateway_name", self.gateway_name.as_str())
            .add_u32("max_frame", self.max_frame)
            .add_i32("heartbeat_ms", self.heartbeat_ms);
        if let Some(prefix) = &self.inbox_prefix {
            message.push("inbox_prefix", prefix.as_str());
        }
        message
    }

    /// The ACK body sent on a mesh link (field order as in `ack-mesh-v2.bin`, then the
    /// authentication fields when set).
    pub fn mesh_message(&self) -> Message {
        let mut message = Message::new()
            .add_i32("protocol_version", self.protocol_version)
            .add_string("gateway_name", self.gateway_name.as_str())
            .add_string("gateway_id", self.gateway_id.as_deref().unwrap_or_default())
            .add_i32("heartbeat_ms", self.heartbeat_ms)
            .add_u32("max_frame", self.max_frame);
        if let Some(auth) = &self.mesh_auth {
            auth.write(&mut message);
        }
        message
    }
}

/// The identity a dialling gateway sends in CONNECT_MESH_PEER (SPEC §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerHello {
    /// `protocol_version`: 2 (absent for MM/1 peers).
    pub protocol_version: Option<i32>,
    /// `gateway_name`.
    pub gateway_name: String,
    /// `gateway_id`: 32 lowercase hex characters, new at every start.
    pub gateway_id: Option<String>,
    /// `heartbeat_ms`.
    pub heartbeat_ms: i32,
    /// Mesh authentication by shared secret (an MM/2 extension).
    pub mesh_auth: Option<MeshAuthFields>,
}

impl PeerHello {
    /// Reads a CONNECT_MESH_PEER body; an empty body is an MM/1 peer.
    pub fn from_message(message: &Message) -> PeerHello {
        PeerHello {
            protocol_version: message.try_i32("protocol_version"),
            gateway_name: message
                .try_string("gateway_name")
                .unwrap_or_default()
                .to_owned(),
            gateway_id: message.try_string("gateway_id").map(str::to_owned),
            heartbeat_ms: message.try_i32("heartbeat_ms").unwrap_or(0).max(0),
            mesh_auth: MeshAuthFields::from_message(message),
        }
    }

    /// The negotiated protocol.
    pub fn protocol(&self) -> Protocol {
        match self.protocol_version {
            Some(version) if version >= PROTOCOL_VERSION => Protocol::Mm2,
            _ => Protocol::Mm1,
        }
    }

    /// The CONNECT_MESH_PEER body (field order as in `connect-mesh-peer-v2.bin`).
    pub fn to_message(&self) -> Message {
        let mut message = Message::new()
            .add_i32(
                "protocol_version",
                self.protocol_version.unwrap_or(PROTOCOL_VERSION),
            )
            .add_string("gateway_name", self.gateway_name.as_str());
        if let Some(id) = &self.gateway_id {
            message.push("gateway_id", id.as_str());
        }
        message.push("heartbeat_ms", self.heartbeat_ms);
        if let Some(auth) = &self.mesh_auth {
            auth.write(&mut message);
        }
        message
    }
}

/// ERROR codes (SPEC §5.1). Stable strings; the `text` field is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Malformed frame or misuse.
    Protocol,
    /// A frame longer than `max_frame`.
    FrameTooLarge,
    /// An invalid subject, pattern or reply subject.
    InvalidSubject,
    /// SUBSCRIBE with an id already live on the connection.
    DuplicateSubscriptionId,
    /// UNSUBSCRIBE of an id the gateway does not know.
    UnknownSubscriptionId,
    /// The connection's queued output passed its bound.
    SlowConsumer,
    /// Not allowed.
    NotAuthorized,
    /// The gateway does not serve that service (unknown, not allowed, or the service limit
    /// is reached).
    ServiceRefused,
    /// A per-connection limit is reached (subscriptions, mesh flushes in progress, …); the frame
    /// was refused. Not in the first implementation's list: an MM/2 extension.
    LimitExceeded,
    /// The connection asks for something faster than the gateway serves it (`_MM.STATS`); the
    /// request was refused, try again later. An MM/2 extension.
    RateLimited,
    /// The credentials in CONNECT (or the mesh peer's proof) were missing or wrong; the
    /// connection is closed. An MM/2 extension.
    AuthenticationFailed,
    /// The connection's user may not publish or subscribe to that subject (or ask for
    /// `_MM.STATS`); the frame was refused. An MM/2 extension.
    PermissionDenied,
    /// The port accepts TLS connections only; the plaintext connection is closed. An MM/2
    /// extension.
    TlsRequired,
}

impl ErrorCode {
    /// Every code.
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::Protocol,
        ErrorCode::FrameTooLarge,
        ErrorCode::InvalidSubject,
        ErrorCode::DuplicateSubscriptionId,
        ErrorCode::UnknownSubscriptionId,
        ErrorCode::SlowConsumer,
        ErrorCode::NotAuthorized,
        ErrorCode::ServiceRefused,
        ErrorCode::LimitExceeded,
        ErrorCode::RateLimited,
        ErrorCode::AuthenticationFailed,
        ErrorCode::PermissionDenied,
        ErrorCode::TlsRequired,
    ];

    /// The code as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Protocol => "PROTOCOL",
            ErrorCode::FrameTooLarge => "FRAME_TOO_LARGE",
            ErrorCode::InvalidSubject => "INVALID_SUBJECT",
            ErrorCode::DuplicateSubscriptionId => "DUPLICATE_SUBSCRIPTION_ID",
            ErrorCode::UnknownSubscriptionId => "UNKNOWN_SUBSCRIPTION_ID",
            ErrorCode::SlowConsumer => "SLOW_CONSUMER",
            ErrorCode::NotAuthorized => "NOT_AUTHORIZED",
            ErrorCode::ServiceRefused => "SERVICE_REFUSED",
            ErrorCode::LimitExceeded => "LIMIT_EXCEEDED",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::AuthenticationFailed => "AUTHENTICATION_FAILED",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::TlsRequired => "TLS_REQUIRED",
        }
    }

    /// The code for a wire string, if known.
    pub fn parse(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .into_iter()
            .find(|known| known.as_str() == code)
    }

    /// The ERROR body: `code`, `text`.
    pub fn message(self, text: &str) -> Message {
        Message::new()
            .add_string("code", self.as_str())
            .add_string("text", text)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a PING body asks for a mesh-wide flush (`mesh` = true, SPEC §7.5).
pub fn is_mesh_flush(ping_body: &Message) -> bool {
    ping_body.try_bool("mesh").unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_options_negotiate() {
        let (options, warning) = ConnectOptions::from_message(&Message::new());
        assert_eq!(options.protocol(), Protocol::Mm1);
        assert!(warning.is_none());
        let (options, _) =
            ConnectOptions::from_message(&Message::new().add_i32("protocol_version", 1));
        assert_eq!(options.protocol(), Protocol::Mm1);
        let (options, _) =
            ConnectOptions::from_message(&Message::new().add_i32("protocol_version", 3));
        assert_eq!(options.protocol(), Protocol::Mm2);
        let (options, warning) =
            ConnectOptions::from_message(&Message::new().add_i64("protocol_version", 2));
        assert_eq!(options.protocol(), Protocol::Mm1);
        assert_eq!(
            warning,
            Some(ConnectWarning::VersionNotInt32(FieldType::I64))
        );
    }

    #[test]
    fn error_codes_round_trip() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("NOPE"), None);
    }
}
