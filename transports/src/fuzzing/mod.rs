//! Entry points for fuzzing the parsers of peer-controlled bytes. **Not a stable API**:
//! hidden from the documentation, changed whenever the parsers change, used only by
//! `fuzz/fuzz_targets/` (cargo-fuzz) and the property tests
//! (`transports/tests/it/fuzz.rs`), which run the same bodies.
//!
//! Each function takes arbitrary bytes (the first byte picks options such as the size
//! limit or how the bytes are split into reads), runs one parser on the rest, and
//! **panics** when an invariant breaks: a result over its configured limit, a buffer
//! that grows past it, an answer that disagrees with the input, an error message that
//! is not bounded. It returns a short label of what happened (`"frames"`,
//! `"too-large"`, ...), so a test can check that its inputs reach the deep paths.
//!
//! | function          | parser                                                    |
//! |-------------------|-----------------------------------------------------------|
//! | [`tls_frames`]    | the TLS transport's frame decoder (`tls/frame.rs`)        |
//! | [`ws_head`]       | the WebSocket request head (`ws/head.rs`, `ws/accept.rs`) |
//! | [`forwarded`]     | `X-Forwarded-For` / `Forwarded` (`ws/forwarded.rs`)       |
//! | [`proxy_answer`]  | the HTTP CONNECT proxy's answer (`proxy/connect.rs`)      |
//! | [`amqp_delivery`] | an AMQP delivery's properties and body (`amqp/wire.rs`, `amqp/table.rs`) |

mod amqp;
mod frames;
mod http;
mod proxy;

pub use amqp::amqp_delivery;
pub use frames::tls_frames;
pub use http::{forwarded, ws_head};
pub use proxy::proxy_answer;

/// Longest error or log text a parser may build from a peer's bytes.
pub const MAX_ERROR_TEXT: usize = 2048;

/// Panic unless `text` (an error or log text built from a peer's bytes) is bounded.
fn bounded_text(what: &str, text: &str) {
    assert!(
        text.len() <= MAX_ERROR_TEXT,
        "{what}: {} bytes of text built from the peer's bytes (limit {MAX_ERROR_TEXT}): {:?}",
        text.len(),
        text.get(..200).unwrap_or(text)
    );
}
