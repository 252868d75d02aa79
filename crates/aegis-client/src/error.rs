//! What can go wrong on a call.

use aegis_api_types::ErrorBody;

/// Why a call to Aegis failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Aegis answered with an error status (4xx or 5xx) and its JSON error body.
    #[error("Aegis answered {status}: {}", body.error)]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error body: `error`, and `details` on validation errors.
        body: ErrorBody,
        /// The `Retry-After` header in seconds, when the answer has one (429 and 503 always do).
        retry_after: Option<u64>,
    },
    /// The request did not get an answer: connection refused, reset, TLS failure, and so on.
    #[error("could not reach Aegis: {0}")]
    Transport(#[from] reqwest::Error),
    /// No answer arrived within the client's timeout.
    #[error("Aegis did not answer in time")]
    Timeout,
    /// Aegis answered, but the body is not the JSON the route answers with (an error answer that
    /// is not an [`ErrorBody`], such as a proxy's HTML page, lands here too).
    #[error("Aegis answered {status} with a body that does not parse: {message}")]
    Decode {
        /// The HTTP status; `0` when the request body could not be serialised and nothing was
        /// sent (the `aegis-api-types` bodies always serialise).
        status: u16,
        /// What did not parse.
        message: String,
    },
}

impl ClientError {
    /// The HTTP status of the answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Decode { status, .. } => Some(*status),
            Self::Transport(e) => e.status().map(|s| s.as_u16()),
            Self::Timeout => None,
        }
    }

    /// The error body of an error answer.
    pub fn body(&self) -> Option<&ErrorBody> {
        match self {
            Self::Api { body, .. } => Some(body),
            _ => None,
        }
    }

    /// How many seconds Aegis asked to wait before trying again (`Retry-After`, always on 429 and
    /// 503 answers).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether Aegis refused the credentials (401): a missing or wrong key, an invalid or
    /// expired token, wrong login credentials.
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(401)
    }

    /// Whether the caller may not do this (403), such as a non-admin on an admin route.
    pub fn is_forbidden(&self) -> bool {
        self.status() == Some(403)
    }

    /// Whether what the call names does not exist (404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Whether Aegis refused the request for its content (400), typically a validation error
    /// whose [`ErrorBody::details`] names the fields.
    pub fn is_bad_request(&self) -> bool {
        self.status() == Some(400)
    }

    /// Whether the call was rate limited (429); see [`Self::retry_after`].
    pub fn is_rate_limited(&self) -> bool {
        self.status() == Some(429)
    }

    /// Whether the failure is Aegis's side rather than the request's: no answer, a timeout, a 5xx,
    /// or an answer that does not parse. Trying again later may succeed.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Transport(_) | Self::Timeout | Self::Decode { .. } => true,
            Self::Api { status, .. } => *status >= 500,
        }
    }
}
