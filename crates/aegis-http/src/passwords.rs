//! The password port on a bounded pool: at most one hashing job per CPU runs at a time, on tokio's
//! blocking threads, so a burst of logins queues instead of starving request handling or exhausting
//! memory (each Argon2id job holds its memory cost, 19 MiB by default).

use std::sync::Arc;

use aegis_domain::password::{HashError, PasswordAlgorithms, PasswordHasher, Verification};
use aegis_domain::user::PlainPassword;
use async_trait::async_trait;
use tokio::sync::Semaphore;

/// [`PasswordHasher`] running [`PasswordAlgorithms`] off the request threads.
#[derive(Clone)]
pub struct PooledHasher {
    algorithms: Arc<PasswordAlgorithms>,
    permits: Arc<Semaphore>,
}

impl PooledHasher {
    /// A pool running at most `concurrency` jobs at once (at least one).
    pub fn new(algorithms: PasswordAlgorithms, concurrency: usize) -> Self {
        Self {
            algorithms: Arc::new(algorithms),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// One job per available CPU.
    pub fn per_cpu(algorithms: PasswordAlgorithms) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new(algorithms, cpus)
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&PasswordAlgorithms) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        let algorithms = self.algorithms.clone();
        tokio::task::spawn_blocking(move || job(&algorithms))
            .await
            .map_err(|e| HashError(e.to_string()))
    }
}

#[async_trait]
impl PasswordHasher for PooledHasher {
    async fn hash(&self, password: &PlainPassword) -> Result<String, HashError> {
        let password = password.clone();
        self.run(move |a| a.hash(&password)).await?
    }

    async fn verify(
        &self,
        password: &PlainPassword,
        stored: Option<String>,
    ) -> Result<Verification, HashError> {
        let password = password.clone();
        self.run(move |a| a.verify(&password, stored.as_deref()))
            .await
    }
}
