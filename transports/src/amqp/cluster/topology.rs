//! The cluster's names on the broker, and connecting: one URL ([`open`]) with the
//! exchange, this node's queue and its bindings declared and its consumer started.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{
    BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection, Consumer, ExchangeKind};
use redpepper_cluster::ClusterError;
use rustls::ClientConfig;

use super::super::broker::{explain, needs_operator, BrokerUrl};

/// The routing key of broadcasts.
const ALL: &str = "all";

/// This node's names on the broker.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    /// The cluster's name (`cluster.name`).
    pub(crate) cluster: String,
    /// This node's name.
    pub(crate) node: String,
    /// `<cluster>.cluster`.
    pub(crate) exchange: ShortString,
    /// `<cluster>.node.<node>`.
    pub(crate) queue: ShortString,
    /// `node.<node>`.
    pub(crate) own_key: ShortString,
    /// `all`.
    pub(crate) all: ShortString,
}

impl Names {
    pub(crate) fn new(cluster: &str, node: &str) -> Result<Names, ClusterError> {
        let short = |what: &str, s: String| {
            ShortString::try_new(s).map_err(|_| ClusterError::Broker {
                url: "-".into(),
                reason: format!("the {what} name exceeds AMQP's limit of 255 bytes"),
            })
        };
        Ok(Names {
            cluster: cluster.to_owned(),
            node: node.to_owned(),
            exchange: short("exchange", format!("{cluster}.cluster"))?,
            queue: short("queue", format!("{cluster}.node.{node}"))?,
            own_key: short("routing key", format!("node.{node}"))?,
            all: ALL.into(),
        })
    }
}

/// The routing key of messages for `node`; `None` when no node can have that name.
pub(crate) fn node_key(node: &str) -> Option<ShortString> {
    if node.is_empty() {
        return None;
    }
    ShortString::try_new(format!("node.{node}")).ok()
}

/// The node a routing key is for (`node.<name>`), for returned messages.
pub(crate) fn key_node(key: &str) -> &str {
    key.strip_prefix("node.").unwrap_or(key)
}

/// A live connection of the link.
pub(crate) struct Active {
    /// The URL it is connected to.
    pub(crate) url: BrokerUrl,
    pub(crate) conn: Connection,
    /// Publishing, in confirm mode.
    pub(crate) publish: Channel,
    /// Consuming this node's queue.
    pub(crate) consumer: Consumer,
}

/// Why [`open`] failed.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// Another connection holds this node's queue.
    NodeInUse(String),
    /// A refusal that needs an operator (login, vhost, permissions, certificate).
    Refused(String),
    /// Something that may pass (broker down, unreachable, timed out).
    Transient(String),
}

impl OpenError {
    pub(crate) fn reason(&self) -> &str {
        match self {
            Self::NodeInUse(r) | Self::Refused(r) | Self::Transient(r) => r,
        }
    }
}

/// Connect to `url` and set everything up within `timeout`.
pub(crate) async fn open(
    url: &BrokerUrl,
    tls: Option<&Arc<ClientConfig>>,
    names: &Names,
    prefetch: u16,
    timeout: Duration,
) -> Result<Active, OpenError> {
    let conn = url
        .connect_checked(tls, format!("redpepper-cluster {}", names.node), timeout)
        .await
        .map_err(|f| {
            let reason = f.error.to_string();
            if f.operator {
                OpenError::Refused(reason)
            } else {
                OpenError::Transient(reason)
            }
        })?;
    match tokio::time::timeout(timeout, declare(&conn, names, prefetch)).await {
        Ok(Ok((publish, consumer))) => Ok(Active {
            url: url.clone(),
            conn,
            publish,
            consumer,
        }),
        Ok(Err(e)) => {
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "".into())).await;
            Err(e)
        }
        Err(_) => {
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "".into())).await;
            Err(OpenError::Transient(format!(
                "exchange and queue not set up within {:.1}s",
                timeout.as_secs_f64()
            )))
        }
    }
}

async fn declare(
    conn: &Connection,
    names: &Names,
    prefetch: u16,
) -> Result<(Channel, Consumer), OpenError> {
    let fail = |what: String| {
        move |e: lapin::Error| {
            let text = format!("{what}: {}", explain(&e));
            if needs_operator(&e) {
                OpenError::Refused(text)
            } else {
                OpenError::Transient(text)
            }
        }
    };
    let publish = conn
        .create_channel()
        .await
        .map_err(fail("opening a channel".into()))?;
    publish
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(fail("enabling publisher confirms".into()))?;
    let consume = conn
        .create_channel()
        .await
        .map_err(fail("opening a channel".into()))?;
    consume
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(fail("setting the prefetch window".into()))?;
    consume
        .exchange_declare(
            names.exchange.clone(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(fail(format!("declaring exchange {}", names.exchange)))?;
    let declared = consume
        .queue_declare(
            names.queue.clone(),
            QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    if let Err(e) = declared {
        if is_locked(&e) {
            return Err(OpenError::NodeInUse(format!(
                "node name {} is already in use in cluster {} (another broker connection \
                 holds queue {}: another manager with this cluster.node, or the broker has \
                 not yet noticed that this node's previous process is gone)",
                names.node, names.cluster, names.queue
            )));
        }
        return Err(fail(format!("declaring queue {}", names.queue))(e));
    }
    for key in [&names.own_key, &names.all] {
        consume
            .queue_bind(
                names.queue.clone(),
                names.exchange.clone(),
                key.clone(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(fail(format!(
                "binding queue {} to exchange {} with {key}",
                names.queue, names.exchange
            )))?;
    }
    let consumer = consume
        .basic_consume(
            names.queue.clone(),
            "redpepper-cluster".into(),
            BasicConsumeOptions {
                exclusive: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(fail(format!("consuming queue {}", names.queue)))?;
    Ok((publish, consumer))
}

/// RabbitMQ's `RESOURCE_LOCKED` (405): another connection holds an exclusive queue.
fn is_locked(e: &lapin::Error) -> bool {
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 405)
}

/// The indices of `n` URLs in the order to try them: from a random one, round, `lost`
/// (the node just lost) last.
pub(crate) fn order(n: usize, lost: Option<usize>) -> impl Iterator<Item = usize> {
    super::super::nodes::order_from(n, lost)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_and_keys() {
        let n = Names::new("redpepper", "mgr-a").unwrap();
        assert_eq!(n.exchange.as_str(), "redpepper.cluster");
        assert_eq!(n.queue.as_str(), "redpepper.node.mgr-a");
        assert_eq!(n.own_key.as_str(), "node.mgr-a");
        assert_eq!(node_key("mgr-b").unwrap().as_str(), "node.mgr-b");
        assert!(node_key(&"x".repeat(300)).is_none());
        assert!(node_key("").is_none());
        assert_eq!(key_node("node.mgr-b"), "mgr-b");
        assert!(Names::new("redpepper", &"x".repeat(300)).is_err());
    }
}
