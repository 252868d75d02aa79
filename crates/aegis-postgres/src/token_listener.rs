//! The connection that keeps a [`TokenCache`] honest: it `LISTEN`s on
//! [`crate::token_cache::CHANNEL`] and applies each notification (decision 88).
//!
//! The cache is bypassed until the listener is subscribed, and again from the moment its
//! connection is found lost: a notification sent meanwhile is missed, so nothing cached before
//! may be trusted. The listener reconnects with a backoff (100 ms doubling to 2 s) and, once it
//! listens again, lets the cache fill from empty. An idle connection is checked every
//! [`PING_INTERVAL`] (by repeating the `LISTEN`), so a peer that vanished silently is noticed too;
//! so is a connection that stopped delivering, by a barrier it does not deliver within 2 s
//! ([`TokenCache::await_barrier`]): the one a revoking write sends, or the one the idle check
//! sends on the listening connection itself.
//! The log says once that the cache is bypassed and once that it caches again.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use futures_util::StreamExt as _;

use crate::connect::ConnectTarget;
use crate::token_cache::{CHANNEL, TokenCache};

/// How often an idle listening connection is checked.
pub const PING_INTERVAL: Duration = Duration::from_secs(10);
/// How long opening the connection or a check may take.
const PATIENCE: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The running listener; dropping it stops it (and leaves its cache bypassed).
pub struct TokenListener {
    task: tokio::task::AbortHandle,
    cache: Weak<TokenCache>,
}

impl Drop for TokenListener {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(cache) = self.cache.upgrade() {
            cache.bypass();
        }
    }
}

impl TokenListener {
    /// Starts listening for `cache` on the database `target` names. Call inside a Tokio runtime.
    pub fn spawn(target: ConnectTarget, cache: &Arc<TokenCache>) -> Self {
        let weak = Arc::downgrade(cache);
        let task = tokio::spawn(run(target, weak.clone())).abort_handle();
        Self { task, cache: weak }
    }
}

async fn run(target: ConnectTarget, cache: Weak<TokenCache>) {
    let mut backoff = FIRST_BACKOFF;
    // `Some` while bypassed because of a failure: since when, and whether that was said.
    let mut outage: Option<Instant> = None;
    loop {
        match subscribe(&target).await {
            Ok(mut conn) => {
                let Some(strong) = cache.upgrade() else {
                    return;
                };
                strong.subscribed();
                drop(strong);
                if let Some(since) = outage.take() {
                    tracing::info!(
                        bypassed_seconds = since.elapsed().as_secs_f64(),
                        "token cache listening again: caching resumed"
                    );
                }
                backoff = FIRST_BACKOFF;
                let lost = pump(&mut conn, &cache).await;
                let Some(strong) = cache.upgrade() else {
                    return;
                };
                strong.bypass();
                tracing::warn!(
                    error = %lost,
                    "token cache listener lost its connection: every bearer check reads the \
                     database until it listens again"
                );
                outage = Some(Instant::now());
            }
            Err(e) => {
                if outage.is_none() {
                    tracing::warn!(
                        error = %e,
                        "token cache cannot listen for invalidations: every bearer check reads \
                         the database until it can"
                    );
                    outage = Some(Instant::now());
                }
            }
        }
        if cache.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A connection that listens on the channel.
async fn subscribe(target: &ConnectTarget) -> Result<AsyncPgConnection, String> {
    let mut conn = tokio::time::timeout(PATIENCE, target.connect())
        .await
        .map_err(|_| "connection timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    listen(&mut conn).await?;
    Ok(conn)
}

async fn listen(conn: &mut AsyncPgConnection) -> Result<(), String> {
    tokio::time::timeout(
        PATIENCE,
        diesel::sql_query(format!("LISTEN {CHANNEL}")).execute(conn),
    )
    .await
    .map_err(|_| "LISTEN timed out".to_owned())?
    .map(drop)
    .map_err(|e| e.to_string())
}

/// Applies notifications until the connection is lost; why it was.
async fn pump(conn: &mut AsyncPgConnection, cache: &Weak<TokenCache>) -> String {
    let Some(strong) = cache.upgrade() else {
        return "stopped".into();
    };
    loop {
        let next = {
            let mut stream = std::pin::pin!(conn.notifications_stream());
            tokio::select! {
                next = tokio::time::timeout(PING_INTERVAL, stream.next()) => next,
                () = strong.undelivered.notified() => {
                    return "a barrier notification was not delivered in time".into();
                }
            }
        };
        match next {
            Ok(Some(Ok(notification))) => strong.apply(&notification.payload),
            Ok(Some(Err(e))) => return e.to_string(),
            Ok(None) => return "connection closed".into(),
            Err(_idle) => {
                if let Err(e) = listen(conn).await {
                    return e;
                }
                // A barrier of its own, which this connection must deliver back in time: a
                // connection that answers statements but no longer delivers (a pooler in
                // transaction mode) is noticed even when no write sends a barrier (decision 98).
                let sent = tokio::time::timeout(PATIENCE, strong.send_barrier(conn)).await;
                match sent {
                    Ok(Some(barrier)) => {
                        let cache = strong.clone();
                        tokio::spawn(async move { cache.await_barrier(barrier).await });
                    }
                    Ok(None) => {}
                    Err(_) => return "the idle check's barrier timed out".into(),
                }
            }
        }
    }
}
