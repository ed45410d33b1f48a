//! Reading request bodies: within the size limit (`JANUA_BODY_LIMIT`, 413 at once when the
//! `Content-Length` says more, before a byte of the body is read), within the read deadline
//! (`JANUA_BODY_READ_TIMEOUT`: a client that drips its body slowly is answered 408), and as
//! UTF-8 where the route reads text (400 `INVALID_UTF8`).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use http_body::Frame;

use crate::error::{AppError, ErrorCode};

/// The body did not end before its deadline.
#[derive(Debug)]
pub struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive before its deadline")
    }
}

impl std::error::Error for BodyTimeout {}

/// A request body that fails with [`BodyTimeout`] once `deadline` passes, however steadily its
/// bytes trickle in (a timer reset by every frame, as tower-http's `TimeoutBody` has, lets a
/// client sending a byte every few seconds hold the request open for ever).
pub struct Deadline {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: bool,
}

impl Deadline {
    /// `body`, due in full within `timeout` from now.
    pub fn new(body: Body, timeout: Duration) -> Self {
        Self { inner: body, sleep: Box::pin(tokio::time::sleep(timeout)), expired: false }
    }
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired = true;
            return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Whether the request's `Content-Length` already says its body is over `limit`.
pub fn declared_too_large(headers: &HeaderMap, limit: usize) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > limit as u64)
}

/// The whole body, at most `limit` bytes: `PAYLOAD_TOO_LARGE` beyond, `REQUEST_TIMEOUT` when
/// its deadline passed, `BAD_REQUEST` when the client broke it off.
pub async fn read(body: Body, limit: usize) -> Result<Bytes, AppError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if s.is::<BodyTimeout>() {
                return AppError::new(ErrorCode::RequestTimeout);
            }
            if s.is::<http_body_util::LengthLimitError>() {
                return AppError::new(ErrorCode::PayloadTooLarge);
            }
            source = s.source();
        }
        AppError::new(ErrorCode::BadRequest)
    })
}

/// `bytes` as text, or 400 `INVALID_UTF8`.
pub fn utf8(bytes: &[u8]) -> Result<&str, AppError> {
    std::str::from_utf8(bytes).map_err(|_| AppError::new(ErrorCode::InvalidUtf8))
}
