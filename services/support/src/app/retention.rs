//! Support's retention job as the service runs it: a sweep now and then, on its own clock.

use tokio::sync::watch;

use crate::Support;
use crate::retention::{RetentionSettings, Sweep, erase_due_messages};

impl Support {
    /// How long closed tickets' messages are kept and how often the sweep looks: the declared
    /// retention and an hourly sweep unless told otherwise.
    #[must_use]
    pub fn with_retention(mut self, settings: RetentionSettings) -> Self {
        self.retention = settings;
        self
    }

    /// Erases the messages of closed tickets due by now, by this service's clock.
    pub async fn erase_due_messages(&self) -> Result<Sweep, tessera_store::StoreError> {
        erase_due_messages(&self.store, self.retention.messages, self.clock.now().wall()).await
    }

    /// Sweeps every [`RetentionSettings::sweep_every`] until `stop`.
    pub async fn sweep_retention(self, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            match self.erase_due_messages().await {
                Ok(Sweep { tickets: 0, .. }) => {}
                Ok(sweep) => tracing::info!(?sweep, "closed tickets' messages erased"),
                Err(error) => tracing::warn!(%error, "the retention sweep failed; retrying later"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.retention.sweep_every) => {}
                _ = stop.changed() => {}
            }
        }
    }
}
