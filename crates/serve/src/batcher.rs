//! Dynamic batching, as Triton's dynamic batcher does it: requests for one model wait in a
//! bounded queue; a worker thread that owns the model takes the first, then keeps taking
//! more until it has `max_batch` of them or `max_delay` has passed since the first, and
//! runs them together. The model never runs on the async runtime's threads.
//!
//! A full queue refuses at once (503 with `Retry-After`); a request whose caller has gone
//! (timed out) is dropped before it runs; a panic while running a batch fails that batch's
//! requests (500) and the worker goes on with the next.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::ApiError;

/// How a model's requests are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most requests run together.
    pub max_batch: usize,
    /// Longest wait for more requests after the first of a batch.
    pub max_delay: Duration,
    /// Most requests waiting; one more is refused with 503.
    pub max_queue: usize,
}

/// What one request gets back.
pub type Reply<T> = Result<T, ApiError>;

struct Job<Req, Resp> {
    request: Req,
    reply: oneshot::Sender<Reply<Resp>>,
}

/// Whether a model has loaded: unset while loading, then `Ok` or the load error.
pub type LoadState = Arc<OnceLock<Result<(), String>>>;

/// The sending side of one model's queue.
pub struct Batcher<Req, Resp> {
    model: String,
    queue: SyncSender<Job<Req, Resp>>,
    state: LoadState,
}

impl<Req: Send + 'static, Resp: Send + 'static> Batcher<Req, Resp> {
    /// Starts the worker thread of model `model`: it calls `load` (so the model is built on
    /// the thread that runs it), then answers batches with `run`, which must return one
    /// reply per request, in order.
    pub fn spawn<M, L, R>(model: &str, config: BatchConfig, load: L, mut run: R) -> Self
    where
        L: FnOnce() -> Result<M, String> + Send + 'static,
        R: FnMut(&M, Vec<Req>) -> Vec<Reply<Resp>> + Send + 'static,
    {
        let (queue, rx) = std::sync::mpsc::sync_channel::<Job<Req, Resp>>(config.max_queue);
        let state: LoadState = Arc::default();
        let thread_state = state.clone();
        let name = model.to_string();
        let spawned = std::thread::Builder::new()
            .name(format!("model-{model}"))
            .spawn(move || {
                let loaded = load();
                let model = match loaded {
                    Ok(m) => {
                        let _ = thread_state.set(Ok(()));
                        m
                    }
                    Err(e) => {
                        tracing::error!(model = %name, "cannot load: {e}");
                        let _ = thread_state.set(Err(e.clone()));
                        // Answer whatever was queued meanwhile, then stop.
                        while let Ok(job) = rx.recv() {
                            let _ = job.reply.send(Err(ApiError::busy(format!(
                                "model `{name}` could not be loaded: {e}"
                            ))));
                        }
                        return;
                    }
                };
                work(&name, &model, &rx, config, &mut run);
            });
        if let Err(e) = spawned {
            let _ = state.set(Err(format!("cannot start its worker thread: {e}")));
        }
        Self {
            model: model.to_string(),
            queue,
            state,
        }
    }

    /// Whether the model has loaded (`None` while it is loading).
    pub fn loaded(&self) -> Option<&Result<(), String>> {
        self.state.get()
    }

    /// Queues `request` and waits for its reply; 503 at once when the queue is full.
    pub async fn call(&self, request: Req) -> Reply<Resp> {
        match self.loaded() {
            None => {
                return Err(ApiError::busy(format!(
                    "model `{}` is still loading",
                    self.model
                )));
            }
            Some(Err(e)) => {
                return Err(ApiError::internal(format!(
                    "model `{}` could not be loaded: {e}",
                    self.model
                )));
            }
            Some(Ok(())) => {}
        }
        let (reply, answer) = oneshot::channel();
        // Counted before it is queued, so that the worker never takes it off the gauge
        // before it was put on.
        let depth = metrics::gauge!("profundo_queue_depth", "model" => self.model.clone());
        depth.increment(1.0);
        let queued = self.queue.try_send(Job { request, reply });
        if queued.is_err() {
            depth.decrement(1.0);
        }
        match queued {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!("profundo_queue_rejections_total", "model" => self.model.clone())
                    .increment(1);
                return Err(ApiError::busy(format!(
                    "model `{}`: the request queue is full; retry shortly",
                    self.model
                )));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(ApiError::busy(format!(
                    "model `{}` is shutting down",
                    self.model
                )));
            }
        }
        answer.await.unwrap_or_else(|_| {
            Err(ApiError::internal(format!(
                "model `{}`: the worker stopped before answering",
                self.model
            )))
        })
    }
}

/// The worker loop: gather a batch, run it, answer, until every sender is gone.
fn work<M, Req, Resp>(
    name: &str,
    model: &M,
    rx: &Receiver<Job<Req, Resp>>,
    config: BatchConfig,
    run: &mut impl FnMut(&M, Vec<Req>) -> Vec<Reply<Resp>>,
) {
    let depth = metrics::gauge!("profundo_queue_depth", "model" => name.to_string());
    let sizes = metrics::histogram!("profundo_batch_size", "model" => name.to_string());
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + config.max_delay;
        let mut jobs = vec![first];
        while jobs.len() < config.max_batch.max(1) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(job) => jobs.push(job),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        depth.decrement(jobs.len() as f64);
        // A caller that timed out has dropped its receiver: its request is not run.
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        sizes.record(jobs.len() as f64);
        let (requests, replies): (Vec<Req>, Vec<_>) =
            jobs.into_iter().map(|j| (j.request, j.reply)).unzip();
        let n = replies.len();
        let answers = std::panic::catch_unwind(AssertUnwindSafe(|| run(model, requests)))
            .unwrap_or_else(|panic| {
                let what = panic_message(&*panic);
                tracing::error!(model = %name, "a batch of {n} panicked: {what}");
                (0..n)
                    .map(|_| Err(ApiError::internal(format!("model `{name}` failed: {what}"))))
                    .collect()
            });
        if answers.len() != n {
            tracing::error!(model = %name, "{} answers for {n} requests", answers.len());
        }
        let mut answers = answers.into_iter();
        for reply in replies {
            let answer = answers.next().unwrap_or_else(|| {
                Err(ApiError::internal(format!(
                    "model `{name}` gave no answer for this request"
                )))
            });
            let _ = reply.send(answer);
        }
    }
}

/// The message of a caught panic.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn config(max_batch: usize, delay_ms: u64, max_queue: usize) -> BatchConfig {
        BatchConfig {
            max_batch,
            max_delay: Duration::from_millis(delay_ms),
            max_queue,
        }
    }

    async fn ready<Req: Send + 'static, Resp: Send + 'static>(b: &Batcher<Req, Resp>) {
        while b.loaded().is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn concurrent_requests_share_a_batch_and_each_gets_its_own_answer() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let b = Batcher::spawn(
            "double",
            config(8, 200, 16),
            || Ok(2),
            move |k: &i32, xs: Vec<i32>| {
                seen.lock().unwrap().push(xs.len());
                xs.into_iter().map(|x| Ok(x * k)).collect()
            },
        );
        ready(&b).await;
        let (x, y, z) = tokio::join!(b.call(1), b.call(2), b.call(3));
        assert_eq!((x.unwrap(), y.unwrap(), z.unwrap()), (2, 4, 6));
        assert_eq!(*sizes.lock().unwrap(), vec![3]);
    }

    #[tokio::test]
    async fn a_panicking_batch_fails_its_requests_and_the_worker_goes_on() {
        let b = Batcher::spawn(
            "fragile",
            config(1, 0, 4),
            || Ok(()),
            |_: &(), xs: Vec<i32>| {
                assert!(xs[0] != 13, "unlucky input");
                xs.into_iter().map(Ok).collect()
            },
        );
        ready(&b).await;
        let e = b.call(13).await.unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        assert!(e.message.contains("unlucky input"), "{e:?}");
        assert_eq!(b.call(7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_with_503_and_retry_after() {
        // The worker blocks until `release` is sent.
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let blocked = Mutex::new(blocked);
        let b = Arc::new(Batcher::spawn(
            "slow",
            config(1, 0, 1),
            || Ok(()),
            move |_: &(), xs: Vec<i32>| {
                let _ = blocked.lock().unwrap().recv();
                xs.into_iter().map(Ok).collect()
            },
        ));
        ready(&b).await;
        // The first request is taken by the worker (which blocks), the second fills the
        // one-place queue, the third is refused.
        let first = tokio::spawn({
            let b = b.clone();
            async move { b.call(1).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = tokio::spawn({
            let b = b.clone();
            async move { b.call(2).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let e = b.call(3).await.unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.retry_after, Some(1));
        release.send(()).unwrap();
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(second.await.unwrap().unwrap(), 2);
    }

    #[tokio::test]
    async fn a_model_that_fails_to_load_answers_with_its_error() {
        let b: Batcher<i32, i32> = Batcher::spawn(
            "broken",
            config(1, 0, 1),
            || Err::<(), _>("no weights".to_string()),
            |_: &(), xs: Vec<i32>| xs.into_iter().map(Ok).collect(),
        );
        ready(&b).await;
        let e = b.call(1).await.unwrap_err();
        assert!(e.message.contains("no weights"), "{e:?}");
    }
}
