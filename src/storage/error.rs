//! What went wrong with a store, as the service said it (status codes and error codes, never
//! message text), and whether trying again can help.

/// Why a store did not take a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFailure {
    /// The key, secret or token was refused.
    WrongKey,
    /// The bucket or container does not exist.
    MissingBucket,
    /// The credentials are good but may not write there.
    NoPermission,
    /// No answer: connection refused, reset, timed out.
    Unreachable,
    /// Any other refusal, with its HTTP status when there was one.
    Refused(Option<u16>),
    /// The local side: a spooled file gone or changed, a folder that cannot be written.
    Local,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub failure: StoreFailure,
    /// In plain words, without secrets.
    pub message: String,
}

impl StoreError {
    pub fn new(failure: StoreFailure, message: impl Into<String>) -> StoreError {
        StoreError {
            failure,
            message: message.into(),
        }
    }

    /// Whether another attempt can succeed without anyone changing the configuration.
    pub fn retriable(&self) -> bool {
        match self.failure {
            StoreFailure::WrongKey | StoreFailure::MissingBucket | StoreFailure::NoPermission => false,
            StoreFailure::Refused(Some(status)) => matches!(status, 408 | 429 | 500..),
            StoreFailure::Refused(None) | StoreFailure::Unreachable | StoreFailure::Local => true,
        }
    }
}

/// Whether an error chain holds a store error that retrying cannot help.
pub fn is_permanent(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<StoreError>())
        .any(|store| !store.retriable())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_a_new_try_can_fix_is_retried() {
        let of = |failure| StoreError::new(failure, "x").retriable();
        assert!(!of(StoreFailure::WrongKey));
        assert!(!of(StoreFailure::MissingBucket));
        assert!(!of(StoreFailure::NoPermission));
        assert!(!of(StoreFailure::Refused(Some(400))));
        assert!(of(StoreFailure::Refused(Some(503))));
        assert!(of(StoreFailure::Refused(Some(429))));
        assert!(of(StoreFailure::Unreachable));
        let wrapped = anyhow::Error::new(StoreError::new(StoreFailure::WrongKey, "wrong key"))
            .context("uploading recording.mp4");
        assert!(is_permanent(&wrapped));
        assert!(!is_permanent(&anyhow::anyhow!("wrong key in the text only")));
    }
}
