//! `redpepper-cluster`: what managers joined into one cluster say to each other, and
//! the interface of the link that carries it (docs/CLUSTER.md).
//!
//! # Layout
//!
//! - [`message`]: [`ClusterMessage`] and [`Envelope`]: heartbeats, the fleet
//!   directory (whole copies and changes), forwarded calls and notifications and
//!   their replies, command updates for the node that started a command, events for
//!   watching nodes, leaving. One MessagePack map each, versioned, unknown keys and
//!   kinds skipped (rolling upgrades).
//! - [`batch`]: several messages for one destination as one broker message
//!   ([`encode_batch`], [`decode_body`]), what the link's writer sends when messages
//!   queue up.
//! - [`link`]: the [`ClusterLink`] trait the manager uses (send to one node or all,
//!   a stream of [`LinkEvent`]s), [`node_tag`] (the prefix of a node's command ids).
//! - [`memory`]: [`MemoryHub`], an in-memory broker for tests.
//! - [`error`](mod@error): [`ClusterError`].
//!
//! The crate names no broker client: the AMQP link is built by
//! `redpepper_transports::cluster_link`, beside the AMQP transport whose connection
//! code it shares; the manager's cluster logic (membership, directory, routing) is in
//! `redpepper_manager::cluster` and sees only [`ClusterLink`].

pub mod batch;
pub mod error;
pub mod link;
pub mod memory;
pub mod message;

pub use batch::{decode_body, encode_batch, BATCH_KIND, BATCH_MAX_BYTES, BATCH_MAX_ITEMS};
pub use error::ClusterError;
pub use link::{node_tag, ClusterLink, LinkEvent, To};
pub use memory::{MemoryHub, MemoryLink};
pub use message::{
    AgentEntry, ClusterMessage, Envelope, Heartbeat, RemoteError, RemoteErrorKind, RemoteEvent,
    DIRECTORY_CHUNK, FORMAT_VERSION, MAX_MESSAGE_SIZE,
};
