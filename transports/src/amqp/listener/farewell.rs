//! Telling the agents of the sessions lost with a broker connection that they ended.
//!
//! A session lives on the manager's instance queue, which the broker deletes with the
//! manager's connection. An agent whose own connection survived (it is on another node
//! of a RabbitMQ cluster, or only the manager's connection broke) would learn it only
//! when it next publishes, at its next ping (`ping_interval`, 30 s by default). Once the
//! listener is connected again it publishes each lost session's end-of-stream marker to
//! the agent's inbox: the agent ends the session and says hello again at once (after
//! its backoff). Not mandatory: an inbox that went with a dead node is simply gone, and
//! its agent knows already.

use std::time::Duration;

use futures::future;
use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use tracing::{debug, info};

use super::{Active, Link};
use crate::amqp::broker::explain;
use crate::amqp::table::Orphan;
use crate::amqp::ttl_millis;
use crate::amqp::wire::eof_properties;

/// How long the farewells' publisher confirms are waited for (lapin keeps a confirm
/// until it is awaited or dropped).
const CONFIRMS: Duration = Duration::from_secs(30);

impl Link {
    /// Publish the end-of-stream marker of every session in `orphans` through
    /// `active`, in a task of its own (the listener goes on accepting meanwhile).
    pub(super) fn farewell(&self, active: &Active, orphans: Vec<Orphan>) {
        if orphans.is_empty() {
            return;
        }
        let channel = active.publish.clone();
        let user = self.user.clone();
        let ttl: ShortString = ttl_millis(self.options.message_ttl).into();
        let broker = active.url.describe().to_owned();
        tokio::spawn(async move {
            let sessions = orphans.len();
            let mut confirms = Vec::with_capacity(sessions);
            for orphan in orphans {
                let props = eof_properties(orphan.session.into(), user.clone(), ttl.clone());
                let published = channel
                    .basic_publish(
                        ShortString::default(),
                        orphan.inbox,
                        BasicPublishOptions::default(),
                        &[],
                        props,
                    )
                    .await;
                match published {
                    Ok(confirm) => confirms.push(confirm),
                    Err(e) => {
                        // The new connection failed too; the link notices on its own,
                        // and these agents find out at their next ping.
                        debug!(%broker, error = %explain(&e), told = confirms.len(), sessions, "cannot tell the agents of lost sessions that they ended");
                        return;
                    }
                }
            }
            info!(%broker, sessions, "told the agents of the sessions lost with the previous broker connection that they ended: they say hello again");
            let _ = tokio::time::timeout(CONFIRMS, future::join_all(confirms)).await;
        });
    }
}
