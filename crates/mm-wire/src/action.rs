//! The action byte of the frame header (SPEC §5).

use std::fmt;

/// What a frame asks the receiver to do.
///
/// The header stores the action as one raw byte; [`Action::from_byte`] returns `None` for values
/// this library does not know, which receivers ignore (SPEC §5: unknown actions are never fatal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Action {
    /// 0: never sent; ignored by receivers.
    None = 0,
    /// 1: client → gateway. subject = service name, reply subject = client name, body = options.
    Connect = 1,
    /// 2: client → gateway. Orderly goodbye; everything empty.
    Disconnect = 2,
    /// 3: gateway → client (or accepting peer → dialling peer). Empty body for MM/1, server info
    /// for MM/2.
    Ack = 3,
    /// 4: client → gateway, dialling peer → accepting peer. subscription_id + pattern.
    Subscribe = 4,
    /// 5: same directions as SUBSCRIBE. subscription_id; subject optional.
    Unsubscribe = 5,
    /// 6: every direction. A user message.
    SendMessage = 6,
    /// 7: gateway → gateway. Like CONNECT, marks the link as a mesh peer.
    ConnectMeshPeer = 7,
    /// 8: MM/2, either direction. Answered by PONG with the same body; doubles as flush.
    Ping = 8,
    /// 9: MM/2. The answer to PING.
    Pong = 9,
    /// 10: MM/2, gateway → client or peer. Body: `code`, `text`.
    Error = 10,
    /// 11: MM/2, gateway → client. A request matched no subscription.
    NoResponders = 11,
}

impl Action {
    /// Every action, in wire order.
    pub const ALL: [Action; 12] = [
        Action::None,
        Action::Connect,
        Action::Disconnect,
        Action::Ack,
        Action::Subscribe,
        Action::Unsubscribe,
        Action::SendMessage,
        Action::ConnectMeshPeer,
        Action::Ping,
        Action::Pong,
        Action::Error,
        Action::NoResponders,
    ];

    /// The action for a header byte, or `None` if the byte is not a known action.
    #[inline]
    pub fn from_byte(byte: u8) -> Option<Action> {
        Action::ALL.get(usize::from(byte)).copied()
    }

    /// The header byte of this action.
    #[inline]
    pub fn to_byte(self) -> u8 {
        self as u8
    }

    /// The protocol's name for the action, e.g. `SEND_MESSAGE`.
    pub fn name(self) -> &'static str {
        match self {
            Action::None => "NONE",
            Action::Connect => "CONNECT",
            Action::Disconnect => "DISCONNECT",
            Action::Ack => "ACK",
            Action::Subscribe => "SUBSCRIBE",
            Action::Unsubscribe => "UNSUBSCRIBE",
            Action::SendMessage => "SEND_MESSAGE",
            Action::ConnectMeshPeer => "CONNECT_MESH_PEER",
            Action::Ping => "PING",
            Action::Pong => "PONG",
            Action::Error => "ERROR",
            Action::NoResponders => "NO_RESPONDERS",
        }
    }

    /// Whether only MM/2 peers may receive this action.
    pub fn is_mm2_only(self) -> bool {
        matches!(
            self,
            Action::Ping | Action::Pong | Action::Error | Action::NoResponders
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_unknown_is_none() {
        for byte in 0..=255u8 {
            match Action::from_byte(byte) {
                Some(action) => assert_eq!(action.to_byte(), byte),
                None => assert!(byte >= 12, "byte {byte} should be known"),
            }
        }
    }
}
