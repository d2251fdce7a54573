//! The WebSocket transport: one RedPepper message per binary WebSocket message, over
//! `ws://` or `wss://`, directly, behind a reverse proxy, or through an HTTP proxy.
//!
//! ```text
//!  agent ─┬─ TCP ──────────────────────────────┐
//!         └─ TCP to proxy, CONNECT host:port ───┤  (crate::proxy)
//!                                               ├─ TLS (wss://; tls::client_config)
//!                                               ├─ HTTP/1.1 upgrade (GET PATH)
//!                                               └─ binary messages, one per payload
//!
//!  +-----------------------------+------------------------------------+
//!  | WebSocket frame header      | payload: one MessagePack message   |  FIN=1, opcode 2 (binary)
//!  | 2..14 bytes (length, mask)  | 0 ..= max_message_size bytes       |  no length prefix of ours
//!  +-----------------------------+------------------------------------+
//! ```
//!
//! - Framing rules: a message or frame over `max_message_size` is refused by
//!   tungstenite's own limits (`max_message_size`, `max_frame_size`) from its header,
//!   and the connection is closed with status 1009; a text message is a
//!   [`TransportError::Protocol`](redpepper_core::error::TransportError::Protocol)
//!   (status 1003). Pings are answered, close frames end the stream cleanly. See
//!   the `halves` module for [`WsReader`] / [`WsWriter`].
//! - Manager side: [`WsListener`] (the `accept` module answers non-upgrade requests
//!   and takes the client address through [`forwarded`] from `trusted_proxies`).
//! - Agent side: [`WsDialer`] for a [`WsUrl`], through the proxy [`proxy_for`] picks.
//!
//! TLS uses the same rustls configurations (and ring provider) as the TLS TCP
//! transport; tokio-tungstenite only sees the decrypted stream.

mod accept;
mod dial;
pub mod forwarded;
mod halves;
mod io;
mod listener;
mod url;

use redpepper_core::transport::{PeerInfo, Transport};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use accept::MAX_REQUEST_HEAD;
pub use dial::{WsDialer, DEFAULT_CONNECT_TIMEOUT};
pub use halves::{WsReader, WsWriter};
pub use io::WsIo;
pub use listener::{WsListener, WsServerOptions, DEFAULT_HANDSHAKE_TIMEOUT};
pub use url::{proxy_for, WsUrl};

/// Bytes tungstenite reads from the connection at a time (its read buffer starts at
/// this size and grows to hold a whole message). Kept small on purpose: tungstenite
/// zero-fills this much before every read, so it is resident memory of every idle
/// connection (32 KiB made an idle agent cost a manager ~50 KiB) and a memset per read.
pub const READ_BUFFER: usize = 4 * 1024;

/// Buffered outgoing frames are written once they pass this many bytes, or on
/// `flush`: a batch of small messages costs one write.
pub const WRITE_BUFFER: usize = 64 * 1024;

/// The tungstenite settings for a connection limited to `max_message_size`.
pub fn websocket_config(max_message_size: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}

/// An established WebSocket connection carrying RedPepper messages.
pub struct WsTransport {
    peer: PeerInfo,
    reader: WsReader,
    writer: WsWriter,
}

impl std::fmt::Debug for WsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsTransport")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl WsTransport {
    fn from_stream(ws: halves::Ws, peer: PeerInfo, label: &str, max: usize) -> Self {
        let (reader, writer) = halves::split(ws, max, label);
        Self {
            peer,
            reader,
            writer,
        }
    }
}

impl Transport for WsTransport {
    type Reader = WsReader;
    type Writer = WsWriter;

    fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    fn split(self) -> (WsReader, WsWriter) {
        (self.reader, self.writer)
    }
}
