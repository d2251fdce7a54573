//! What a dropped listener does with its hello queue.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicCancelOptions, BasicNackOptions, QueueDeleteOptions};
use tracing::{info, warn};

use super::{explain, Active, Link, HELLO_CONSUMER};

impl Link {
    /// The listener was dropped. Alone, delete the hello queue so hellos come back at
    /// once; with a shared queue (a cluster, or a quorum queue, which is always
    /// shared), stop consuming it (the other managers take its hellos; a quorum queue
    /// must outlive us) and give back the hellos the broker had already pushed to us.
    pub(super) async fn stop_accepting(&self, active: &mut Active) {
        if self.shared() {
            let cancelled = active
                .hello_channel
                .basic_cancel(HELLO_CONSUMER.into(), BasicCancelOptions::default())
                .await;
            if let Err(e) = cancelled {
                warn!(queue = %self.hello_queue, error = %explain(&e), "cannot stop consuming the shared hello queue");
            }
            let requeue = BasicNackOptions {
                multiple: false,
                requeue: true,
            };
            // Whatever was pushed before the cancel comes first; then the stream ends.
            while let Ok(Some(Ok(d))) =
                tokio::time::timeout(Duration::from_secs(5), active.hellos.next()).await
            {
                let _ = d.acker.nack(requeue).await;
            }
            info!(queue = %self.hello_queue, sessions = self.table.len(), "AMQP listener closed (the other managers take the shared hello queue); serving the remaining sessions");
            return;
        }
        let deleted = active
            .hello_channel
            .queue_delete(self.hello_queue.clone(), QueueDeleteOptions::default())
            .await;
        if let Err(e) = deleted {
            warn!(queue = %self.hello_queue, error = %explain(&e), "cannot delete the hello queue");
        }
        info!(queue = %self.hello_queue, sessions = self.table.len(), "AMQP listener closed; serving the remaining sessions");
    }
}
