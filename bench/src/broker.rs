//! The RabbitMQ broker of a run's `amqp` rows.
//!
//! | at `--amqp-url`        | RabbitMQ installed | the run uses                                              |
//! |------------------------|--------------------|-----------------------------------------------------------|
//! | a TCP listener answers | -                  | that broker, as the URL says                              |
//! | nothing answers        | yes                | a private node ([`RabbitNode::start`]), stopped at the end |
//! | nothing answers        | no                 | none: every amqp row says why, the rest of the run goes on |
//!
//! The private node is the end-to-end tests' harness: its own ports (127.0.0.1 only),
//! directories, Erlang cookie and `epmd`, started under `setpriv --pdeathsig` so it
//! also ends when the benchmark is killed; dropping [`Broker`] stops it and removes
//! its directory. The run gets a vhost and a user of its own on it (all permissions
//! in that vhost: our manager and agents and the raw baseline share the user, as
//! they share `--amqp-url`). The broker is not pinned: it runs on any allowed CPU.

use redpepper_tests::rabbitmq::{Perms, RabbitNode};
use redpepper_transports::amqp::BrokerUrl;

use crate::placement::raise_nofile;

/// Vhost and user name of the run on a private node.
const RUN_NAME: &str = "redpepper-bench";
/// Open files the private node may use: an AMQP connection per fleet agent.
const BROKER_NOFILE: u64 = 65_536;

/// The broker of a run.
pub struct Broker {
    /// The URL our manager, agents and the raw baseline connect with.
    pub url: String,
    /// Which broker this is, for the run's header (no password).
    pub describe: String,
    /// The private node, when we started one (stopped on drop).
    _node: Option<RabbitNode>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("describe", &self.describe)
            .finish_non_exhaustive()
    }
}

/// `url` without its password.
fn redacted(url: &str) -> String {
    BrokerUrl::parse("--amqp-url", url).map_or_else(
        |_| "the --amqp-url given".to_owned(),
        |u| u.describe().to_owned(),
    )
}

/// Whether something accepts TCP connections at the host and port of `url` (the
/// demo's probe, one of each).
fn answers(url: &str) -> anyhow::Result<bool> {
    redpepper_manager::demo::broker_answers(url).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The text of a panic payload.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// A random password for the run's user (the node listens on 127.0.0.1 only).
fn password() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The broker at `url` if one answers there, else a private node; `Err` says why
/// there is none (the amqp rows then say it).
pub fn for_run(url: &str) -> Result<Broker, String> {
    match answers(url) {
        Ok(true) => {
            return Ok(Broker {
                url: url.to_owned(),
                describe: format!("{} (already running; given by --amqp-url)", redacted(url)),
                _node: None,
            })
        }
        Ok(false) => {}
        Err(e) => return Err(format!("{e:#}")),
    }
    let nobody = format!("nothing answers at {}", redacted(url));
    if !redpepper_tests::rabbitmq::installed() {
        return Err(format!(
            "{nobody} and RabbitMQ is not installed, so no private broker could be started \
             (apt-get install rabbitmq-server, or run scripts/test once)"
        ));
    }
    // The node inherits our limit: one file per agent connection in the fleets.
    if let Err(e) = raise_nofile(BROKER_NOFILE) {
        crate::workloads::progress(&format!("cannot raise the open-file limit: {e:#}"));
    }
    crate::workloads::progress(&format!("{nobody}: starting a private RabbitMQ node"));
    let pass = password();
    // The harness panics with the reason when the node does not start.
    let started = std::panic::catch_unwind(|| {
        let node = RabbitNode::start();
        node.add_user(RUN_NAME, &pass, RUN_NAME, &Perms::all());
        node
    });
    let node = started.map_err(|p| {
        format!(
            "{nobody} and the private RabbitMQ node did not start: {}",
            panic_text(p.as_ref())
        )
    })?;
    let url = node.amqp_url(RUN_NAME, &pass, RUN_NAME);
    let describe = format!(
        "private RabbitMQ node {} started for this run ({nobody}): {}, stopped at the end",
        node.name(),
        redacted(&url)
    );
    Ok(Broker {
        url,
        describe,
        _node: Some(node),
    })
}
