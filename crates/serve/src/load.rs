//! A bounded HTTP load generator (behind `profundo bench serve`): `concurrency` keep-alive
//! connections, each sending its next request as soon as the last is answered, until
//! `requests` have been sent or `max_time` has passed. Loopback only: it takes a socket
//! address, not a URL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
pub use hyper::Method;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Serialize;

/// One kind of request to send.
#[derive(Debug, Clone)]
pub struct Target {
    /// `GET` or `POST`.
    pub method: Method,
    /// Path and query of each request; request `i` uses `paths[i % len]`.
    pub paths: Vec<String>,
    /// Bodies (`POST`); request `i` uses `bodies[i % len]`, none for `GET`.
    pub bodies: Vec<Bytes>,
    /// The bodies' content type.
    pub content_type: &'static str,
}

/// How much load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Connections, each with one request in flight.
    pub concurrency: usize,
    /// Requests in all.
    pub requests: usize,
    /// Stop sending after this long.
    pub max_time: Duration,
}

/// What a load run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    /// Connections.
    pub concurrency: usize,
    /// Requests answered with 2xx.
    pub ok: usize,
    /// Requests answered otherwise, or that failed.
    pub errors: usize,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Successful requests per second.
    pub per_second: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
}

/// Sends `load` of `target` to the server at `addr`.
pub async fn run(addr: SocketAddr, target: &Target, load: Load) -> LoadReport {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..load.concurrency.max(1))
        .map(|_| {
            let (next, target) = (next.clone(), target.clone());
            tokio::spawn(async move { connection(addr, &target, load, &next, start).await })
        })
        .collect();
    let (mut latencies, mut errors, mut first_error) = (Vec::new(), 0, None);
    for t in tasks {
        match t.await {
            Ok(r) => {
                latencies.extend(r.latencies);
                errors += r.errors;
                first_error = first_error.or(r.first_error);
            }
            Err(e) => {
                errors += 1;
                first_error = first_error.or(Some(format!("a client task failed: {e}")));
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if latencies.is_empty() {
            f64::NAN
        } else {
            profundo_core::bench::percentile(&latencies, p)
        }
    };
    LoadReport {
        concurrency: load.concurrency,
        ok: latencies.len(),
        errors,
        seconds,
        per_second: latencies.len() as f64 / seconds,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        first_error,
    }
}

struct ConnectionResult {
    latencies: Vec<f64>,
    errors: usize,
    first_error: Option<String>,
}

async fn connection(
    addr: SocketAddr,
    target: &Target,
    load: Load,
    next: &AtomicUsize,
    start: Instant,
) -> ConnectionResult {
    let mut out = ConnectionResult {
        latencies: Vec::new(),
        errors: 0,
        first_error: None,
    };
    let mut sender = None;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= load.requests || start.elapsed() >= load.max_time {
            return out;
        }
        if sender.is_none() {
            match open(addr).await {
                Ok(s) => sender = Some(s),
                Err(e) => {
                    out.errors += 1;
                    out.first_error.get_or_insert(e);
                    continue;
                }
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        let t = Instant::now();
        match send(s, addr, target, i).await {
            Ok(Ok(())) => out.latencies.push(t.elapsed().as_secs_f64() * 1e3),
            Ok(Err(status)) => {
                out.errors += 1;
                out.first_error.get_or_insert(status);
            }
            Err(broken) => {
                out.errors += 1;
                out.first_error.get_or_insert(broken);
                sender = None;
            }
        }
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn open(addr: SocketAddr) -> Result<Sender, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {addr} failed: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends request `i`: `Ok(Ok(()))` for a 2xx answer, `Ok(Err)` for another status (the
/// connection stays usable), `Err` when the connection broke.
async fn send(
    s: &mut Sender,
    addr: SocketAddr,
    target: &Target,
    i: usize,
) -> Result<Result<(), String>, String> {
    let path = &target.paths[i % target.paths.len().max(1)];
    let body = if target.bodies.is_empty() {
        Bytes::new()
    } else {
        target.bodies[i % target.bodies.len()].clone()
    };
    let req = Request::builder()
        .method(target.method.clone())
        .uri(path.as_str())
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::CONTENT_TYPE, target.content_type)
        .body(Full::new(body))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    s.ready()
        .await
        .map_err(|e| format!("connection closed: {e}"))?;
    let resp = s
        .send_request(req)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("cannot read the answer: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Ok(Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )));
    }
    Ok(Ok(()))
}
