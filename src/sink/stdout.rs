//! The stdout sink: one record per line (NDJSON or CEF lines), flushed per batch.
//!
//! Invariant: a record never holds a raw newline (encoders guarantee it), so each line is one
//! event; the batch is acknowledged only after the flush returned.

use bytes::Bytes;
use tokio::io::AsyncWriteExt as _;

use super::SinkError;

/// Writes to the process's standard output.
#[derive(Debug)]
pub struct StdoutSink {
    out: tokio::io::Stdout,
    /// `demo --events N`: records still to print, and what to cancel after the last one.
    limit: Option<(u64, tokio_util::sync::CancellationToken)>,
    /// Cancelled when stdout is closed (`… | head`): the agent stops instead of retrying.
    on_closed: Option<tokio_util::sync::CancellationToken>,
    /// Where records are encoded.
    pub(super) records: super::Records,
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self::new()
    }
}

impl StdoutSink {
    /// A sink on stdout.
    pub fn new() -> StdoutSink {
        StdoutSink {
            out: tokio::io::stdout(),
            records: super::Records::default(),
            limit: None,
            on_closed: None,
        }
    }

    /// A stdout sink that stops the agent (via `cancel`) when its reader goes away.
    pub fn stopping(cancel: tokio_util::sync::CancellationToken) -> StdoutSink {
        StdoutSink {
            on_closed: Some(cancel),
            ..StdoutSink::new()
        }
    }

    /// Prints at most `n` records, then cancels `done` (the demo's `--events N`).
    pub fn with_limit(n: u64, done: tokio_util::sync::CancellationToken) -> StdoutSink {
        StdoutSink {
            limit: Some((n, done.clone())),
            on_closed: Some(done),
            ..StdoutSink::new()
        }
    }

    /// Writes and flushes the records, one per line.
    pub async fn send(&mut self, records: &[Bytes]) -> Result<(), SinkError> {
        let mut buf = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum());
        let records = match &mut self.limit {
            None => records,
            Some((left, done)) => {
                let take = records.len().min(*left as usize);
                *left -= take as u64;
                if *left == 0 {
                    done.cancel();
                }
                &records[..take]
            }
        };
        for r in records {
            buf.extend_from_slice(r);
            buf.push(b'\n');
        }
        let res = async {
            self.out.write_all(&buf).await?;
            self.out.flush().await
        }
        .await;
        res.map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                // Not acknowledged: the cursor keeps these events for the next start.
                if let Some(c) = &self.on_closed {
                    c.cancel();
                }
                SinkError::retryable("stdout is closed (broken pipe); stopping")
            } else {
                SinkError::retryable(format!("cannot write to stdout: {e}"))
            }
        })
    }
}
