//! What a benchmark run is about: which broker, what each message carries, how much to send.

use std::time::Duration;

use messaging_mesh::Message;

/// Which broker a workload runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum System {
    /// Messaging Mesh, through the `messaging-mesh` client library.
    Mm,
    /// Messaging Mesh, through the raw protocol client in this tool.
    MmRaw,
    /// NATS, through the raw protocol client in this tool.
    Nats,
}

impl System {
    /// The system's display name.
    pub fn name(self) -> &'static str {
        match self {
            System::Mm => "Messaging Mesh",
            System::MmRaw => "Messaging Mesh (raw client)",
            System::Nats => "NATS",
        }
    }
}

/// The message every workload sends: one BLOB field `p` of `size` bytes (NATS: a payload of
/// `size` bytes), or — for the classic workload — one int32 field `#`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Payload {
    /// One BLOB field `p` of this many bytes.
    Blob(usize),
    /// One int32 field `#` (34-byte frames); NATS sends the 4 bytes of the int.
    Int32,
}

impl Payload {
    /// Payload bytes as NATS sees them.
    pub fn nats_bytes(self) -> Vec<u8> {
        match self {
            Payload::Blob(size) => vec![0x5a; size],
            Payload::Int32 => 7i32.to_le_bytes().to_vec(),
        }
    }

    /// The Messaging Mesh message.
    pub fn message(self) -> Message {
        match self {
            Payload::Blob(size) => Message::new().add_blob("p", vec![0x5a; size]),
            Payload::Int32 => Message::new().add_i32("#", 7),
        }
    }

    /// A short label: `16 B`, `int32`.
    pub fn label(self) -> String {
        match self {
            Payload::Blob(size) if size >= 1024 && size % 1024 == 0 => {
                format!("{} KiB", size / 1024)
            }
            Payload::Blob(size) => format!("{size} B"),
            Payload::Int32 => "int32".to_owned(),
        }
    }
}

/// How much to send.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub enum Amount {
    /// This many messages per publisher.
    Count(u64),
    /// Publish for this long.
    Duration(Duration),
}
