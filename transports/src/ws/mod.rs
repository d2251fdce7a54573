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
//! - Write buffer: bounded by [`max_write_buffer`]; a peer that keeps sending pings
//!   while it reads none of the pongs is disconnected with a
//!   [`TransportError::Protocol`](redpepper_core::error::TransportError::Protocol)
//!   once [`WRITE_BUFFER_MARGIN`] bytes of pongs wait behind a blocked connection.
//! - Manager side: [`WsListener`] (the `accept` module answers non-upgrade requests
//!   and takes the client address through [`forwarded`] from `trusted_proxies`; the
//!   `head` module collects the request head, parsing it only when it can have
//!   ended, so a head sent a byte per packet costs linear time).
//! - Agent side: [`WsDialer`] for a [`WsUrl`], through the proxy [`proxy_for`] picks.
//!
//! TLS uses the same rustls configurations (and ring provider) as the TLS TCP
//! transport; tokio-tungstenite only sees the decrypted stream.

pub(crate) mod accept;
mod dial;
pub mod forwarded;
mod halves;
pub(crate) mod head;
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
/// connection: an idle agent cost a manager ~50 KiB with 32 KiB, 25.8 KiB with 4 KiB
/// and 23.0 KiB with 1 KiB (at 1,000 agents), while 1 MiB messages moved as fast
/// with 1 KiB as with 4 KiB, directly and through nginx (docs/PERFORMANCE.md).
pub const READ_BUFFER: usize = 1024;

/// Buffered outgoing frames are written once they pass this many bytes, or on
/// `flush`: a batch of small messages costs one write.
pub const WRITE_BUFFER: usize = 64 * 1024;

/// Room in the write buffer beyond one batch and one largest message: the control
/// frames (pongs, a close frame) queued while the peer is not reading.
pub const WRITE_BUFFER_MARGIN: usize = 64 * 1024;

/// Largest frame header (2 bytes, 8 of length, 4 of mask).
const MAX_FRAME_HEADER: usize = 14;

/// The most bytes tungstenite buffers for writing on a connection limited to
/// `max_message_size`: a batch ([`WRITE_BUFFER`]), one largest message and
/// [`WRITE_BUFFER_MARGIN`]. Past it tungstenite refuses to queue more (unlimited by
/// default): a peer that sends pings and never reads cannot grow our memory with
/// pongs, and the reader ends such a connection (see the `halves` module).
pub fn max_write_buffer(max_message_size: usize) -> usize {
    WRITE_BUFFER
        .saturating_add(max_message_size)
        .saturating_add(MAX_FRAME_HEADER)
        .saturating_add(WRITE_BUFFER_MARGIN)
}

/// The tungstenite settings for a connection limited to `max_message_size`.
pub fn websocket_config(max_message_size: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(max_write_buffer(max_message_size))
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

    fn read_limit(&self) -> Option<redpepper_core::transport::ReadLimit> {
        Some(self.reader.limit())
    }

    fn split(self) -> (WsReader, WsWriter) {
        (self.reader, self.writer)
    }
}
