//! What goes on the wire: the protocols' messages about an operation, and the raw text frame
//! the event lanes write without going through tungstenite.

use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// `{"type":…,"id":…` — the start of every message about operation `id`.
pub(super) fn head(kind: &str, id: &str) -> String {
    let id = serde_json::to_string(id).unwrap_or_else(|_| "\"\"".into());
    format!("{{\"type\":\"{kind}\",\"id\":{id}")
}

/// `{"type":…,"id":…,"payload":…}` with `payload` already JSON.
pub(super) fn message(kind: &str, id: &str, payload: Option<&str>) -> Message {
    let mut s = head(kind, id);
    if let Some(p) = payload {
        s.push_str(",\"payload\":");
        s.push_str(p);
    }
    s.push('}');
    Message::Text(s.into())
}

/// A text message holding `v`.
pub(super) fn text(v: serde_json::Value) -> Message {
    Message::Text(v.to_string().into())
}

/// A close frame; its reason is cut to the 123 bytes a control frame has room for.
pub(super) fn close_frame(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame { code: code.into(), reason: Utf8Bytes::from(&reason[..end]) }))
}

/// A server's WebSocket text frame (unmasked, final) holding `prefix`, `payload` and `}`, in
/// `out` (cleared first, so one buffer serves a whole pass).
pub(super) fn text_frame(out: &mut Vec<u8>, prefix: &str, payload: &str) {
    let len = prefix.len() + payload.len() + 1;
    out.clear();
    out.push(0x81);
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(payload.as_bytes());
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    use super::*;

    #[test]
    fn a_lane_frame_is_the_message_tungstenite_would_send() {
        let prefix = head("next", "1") + ",\"payload\":";
        for size in [10, 200, 70_000] {
            let payload = format!("\"{}\"", "x".repeat(size));
            let mut out = Vec::new();
            text_frame(&mut out, &prefix, &payload);
            let data = message("next", "1", Some(&payload)).into_data();
            let mut expected = Vec::new();
            Frame::message(data, OpCode::Data(Data::Text), true).format(&mut expected).expect("a frame");
            assert_eq!(out, expected, "payload of {size} bytes");
        }
    }
}
