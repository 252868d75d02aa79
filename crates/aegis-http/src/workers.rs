//! Background workers inside the service: started with it, stopped with it, each pass finished
//! before stopping.

use std::time::Duration;

use aegis_domain::delivery::EmailDelivery;
use aegis_domain::webhook_delivery::WebhookDelivery;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Running workers. [`Workers::stop`] lets the current pass finish, then ends them.
pub struct Workers {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

impl Default for Workers {
    fn default() -> Self {
        Self {
            stop: watch::channel(false).0,
            handles: Vec::new(),
        }
    }
}

impl Workers {
    /// Starts the email outbox worker: a pass every `interval`, up to `batch` messages each.
    pub fn spawn_email(&mut self, delivery: EmailDelivery, interval: Duration, batch: i64) {
        let mut stop = self.stop.subscribe();
        self.handles.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    () = tokio::time::sleep(interval) => {}
                }
                match delivery.run_once(batch).await {
                    Ok(report) if report.attempted > 0 => tracing::info!(
                        attempted = report.attempted,
                        delivered = report.delivered,
                        retrying = report.retrying,
                        exhausted = report.exhausted,
                        "email outbox pass"
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "email outbox pass failed; retrying later")
                    }
                }
            }
        }));
    }

    /// Starts the webhook worker: a sweep every `interval`.
    pub fn spawn_webhooks(&mut self, delivery: WebhookDelivery, interval: Duration) {
        let mut stop = self.stop.subscribe();
        self.handles.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    () = tokio::time::sleep(interval) => {}
                }
                match delivery.sweep().await {
                    Ok(r) if r.attempted > 0 || r.pruned > 0 => tracing::info!(
                        attempted = r.attempted,
                        delivered = r.delivered,
                        retrying = r.retrying,
                        exhausted = r.exhausted,
                        still_due = r.still_due,
                        pruned = r.pruned,
                        "webhook sweep"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "webhook sweep failed; retrying later"),
                }
            }
        }));
    }

    /// Starts housekeeping: deletes rate-limit counters of finished windows every minute.
    pub fn spawn_housekeeping(
        &mut self,
        counters: std::sync::Arc<dyn aegis_domain::ratelimit::RateCounters>,
        clock: std::sync::Arc<dyn aegis_domain::Clock>,
    ) {
        let mut stop = self.stop.subscribe();
        self.handles.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    () = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
                if let Err(e) = counters.prune(clock.now()).await {
                    tracing::warn!(error = %e, "pruning rate-limit counters failed");
                }
            }
        }));
    }

    /// Asks every worker to stop and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for handle in self.handles {
            let _ = handle.await;
        }
    }
}
