//! The load generator: keep-alive HTTP/1.1 connections, an open-loop fixed-rate driver that
//! measures from each request's *scheduled* send time (no coordinated omission), and a closed-loop
//! saturation driver.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Where requests go and what they carry.
pub struct Target {
    pub addr: SocketAddr,
    pub path: String,
    pub auth: HeaderValue,
    pub host: HeaderValue,
    pub body: Bytes,
    pub stream: bool,
}

impl Target {
    pub fn new(addr: SocketAddr, path: &str, bearer: &str, body: Bytes, stream: bool) -> anyhow::Result<Target> {
        Ok(Target {
            addr,
            path: path.to_string(),
            auth: HeaderValue::from_str(&format!("Bearer {bearer}"))?,
            host: HeaderValue::from_str(&addr.to_string())?,
            body,
            stream,
        })
    }
}

type Conn = SendRequest<Full<Bytes>>;

pub async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(tx)
}

/// One finished request.
pub struct Outcome {
    pub ok: bool,
    /// The first non-empty body frame.
    pub first_byte: Instant,
    pub end: Instant,
    /// The gateway's own `x-tokenone-overhead-ms`, when present.
    pub overhead_ms: Option<f64>,
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends one request on `conn` and reads the whole answer. `ok` means 200 and a complete body
/// (a usage object; for streams, the `[DONE]` line).
pub async fn send(conn: &mut Conn, t: &Target) -> anyhow::Result<Outcome> {
    tokio::time::timeout(REQUEST_TIMEOUT, send_inner(conn, t))
        .await
        .map_err(|_| anyhow::anyhow!("request timed out"))?
}

async fn send_inner(conn: &mut Conn, t: &Target) -> anyhow::Result<Outcome> {
    conn.ready().await?;
    let req = Request::builder()
        .method(Method::POST)
        .uri(t.path.as_str())
        .header(HOST, t.host.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(AUTHORIZATION, t.auth.clone())
        .body(Full::new(t.body.clone()))?;
    let resp = conn.send_request(req).await?;
    let status = resp.status();
    let overhead_ms = resp
        .headers()
        .get("x-tokenone-overhead-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok());
    let mut body = resp.into_body();
    let mut first_byte = None;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Some(d) = frame.data_ref() {
            if first_byte.is_none() && !d.is_empty() {
                first_byte = Some(Instant::now());
            }
            buf.extend_from_slice(d);
        }
    }
    let end = Instant::now();
    let complete = if t.stream {
        contains(&buf, b"data: [DONE]")
    } else {
        contains(&buf, b"\"usage\"")
    };
    Ok(Outcome {
        ok: status.is_success() && complete,
        first_byte: first_byte.unwrap_or(end),
        end,
        overhead_ms,
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A pool of keep-alive connections, at most one request on each at a time.
pub struct Pool {
    addr: SocketAddr,
    free: Mutex<Vec<Option<Conn>>>,
    permits: Semaphore,
}

impl Pool {
    pub async fn open(addr: SocketAddr, size: usize) -> anyhow::Result<Arc<Pool>> {
        let mut free = Vec::with_capacity(size);
        for _ in 0..size {
            free.push(Some(connect(addr).await?));
        }
        Ok(Arc::new(Pool {
            addr,
            free: Mutex::new(free),
            permits: Semaphore::new(size),
        }))
    }

    /// Waits for a free connection (FIFO), sends, and gives the connection back.
    async fn send(&self, t: &Target) -> anyhow::Result<Outcome> {
        let _permit = self.permits.acquire().await?;
        let slot = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop().flatten();
        let mut conn = match slot {
            Some(c) if !c.is_closed() => c,
            _ => connect(self.addr).await?,
        };
        let res = send(&mut conn, t).await;
        let back = res.is_ok().then_some(conn);
        self.free.lock().unwrap_or_else(|p| p.into_inner()).push(back);
        res
    }
}

/// Sleeps until shortly before `at`, then yields the core until `at`. The ticker's timer slack is
/// 1 ns ([`precise_timers`]), so the sleep ends within the wake-up latency and the spin is short:
/// a long spin took CPU from the mock and the load generator on the same core.
fn wait_until(at: Instant) {
    const SPIN: Duration = Duration::from_micros(30);
    loop {
        let now = Instant::now();
        if now >= at {
            return;
        }
        let left = at - now;
        if left > SPIN {
            std::thread::sleep(left - SPIN);
        } else {
            std::thread::yield_now();
        }
    }
}

/// Sets this thread's timer slack to 1 ns (the default, 50 us, delays every sleep by that much).
fn precise_timers() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes a number and changes only the calling thread's slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// Per-request results of a fixed-rate run, in nanoseconds.
#[derive(Default)]
pub struct OpenLoop {
    pub sent: usize,
    pub errors: usize,
    /// Scheduled send to the end of the answer.
    pub latency: Vec<u64>,
    /// Scheduled send to the first body byte.
    pub ttfb: Vec<u64>,
    /// Scheduled send to the moment the load generator started the request (its own lag).
    pub lag: Vec<u64>,
    /// The gateway's self-reported overhead, in microseconds.
    pub overhead_us: Vec<u64>,
    pub first_error: Option<String>,
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

/// Sends `rate` requests per second for `duration`, each at its scheduled instant whatever
/// happened to the earlier ones. Ticks come from a dedicated thread (tokio's timer has 1 ms
/// granularity, too coarse here); latency is counted from the scheduled instant.
pub async fn open_loop(pool: Arc<Pool>, target: Arc<Target>, rate: f64, duration: Duration) -> OpenLoop {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let period = Duration::from_secs_f64(1.0 / rate);
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let ticker = std::thread::spawn(move || {
        precise_timers();
        let start = Instant::now() + Duration::from_millis(5);
        for i in 0..total {
            let at = start + period.mul_f64(i as f64);
            wait_until(at);
            if tx.send(at).is_err() {
                break;
            }
        }
    });
    let results = Arc::new(Mutex::new(OpenLoop::default()));
    let mut tasks = Vec::with_capacity(total as usize);
    while let Some(at) = rx.recv().await {
        let (pool, target, results) = (pool.clone(), target.clone(), results.clone());
        tasks.push(tokio::spawn(async move {
            let lag = at.elapsed();
            let res = pool.send(&target).await;
            let mut r = results.lock().unwrap_or_else(|p| p.into_inner());
            r.sent += 1;
            r.lag.push(nanos(lag));
            match res {
                Ok(o) if o.ok => {
                    r.latency.push(nanos(o.end - at));
                    r.ttfb.push(nanos(o.first_byte - at));
                    if let Some(ms) = o.overhead_ms {
                        r.overhead_us.push((ms * 1000.0).round().max(0.0) as u64);
                    }
                }
                Ok(_) => {
                    r.errors += 1;
                    r.first_error
                        .get_or_insert_with(|| "non-200 or incomplete answer".into());
                }
                Err(e) => {
                    r.errors += 1;
                    r.first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }));
    }
    let _ = ticker.join();
    for t in tasks {
        let _ = t.await;
    }
    let mut out = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
    for v in [&mut out.latency, &mut out.ttfb, &mut out.lag, &mut out.overhead_us] {
        v.sort_unstable();
    }
    out
}

/// A closed-loop run: `connections` workers, each sending its next request as soon as the
/// previous answer is read.
#[derive(Default)]
pub struct ClosedLoop {
    pub completed: usize,
    pub errors: usize,
    pub seconds: f64,
    pub latency: Vec<u64>,
    pub first_error: Option<String>,
    /// Completions the mock served per second over the whole run (set by the caller).
    pub upstream_rate: f64,
}

impl ClosedLoop {
    pub fn throughput(&self) -> f64 {
        if self.seconds > 0.0 {
            self.completed as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Runs `warmup` (not counted) then `duration` (counted) of closed-loop load.
pub async fn closed_loop(target: Arc<Target>, connections: usize, warmup: Duration, duration: Duration) -> ClosedLoop {
    let begin = Instant::now() + warmup;
    let end = begin + duration;
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut r = ClosedLoop::default();
            let mut conn: Option<Conn> = None;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let c = match conn.take() {
                    Some(c) if !c.is_closed() => c,
                    _ => match connect(target.addr).await {
                        Ok(c) => c,
                        Err(e) => {
                            r.errors += 1;
                            r.first_error.get_or_insert_with(|| e.to_string());
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                };
                let mut c = c;
                let started = Instant::now();
                let res = send(&mut c, &target).await;
                let counted = started >= begin && Instant::now() <= end;
                match res {
                    Ok(o) if o.ok => {
                        conn = Some(c);
                        if counted {
                            r.completed += 1;
                            r.latency.push(nanos(o.end - started));
                        }
                    }
                    Ok(_) => {
                        conn = Some(c);
                        if counted {
                            r.errors += 1;
                            r.first_error
                                .get_or_insert_with(|| "non-200 or incomplete answer".into());
                        }
                    }
                    Err(e) => {
                        if counted {
                            r.errors += 1;
                            r.first_error.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
            }
            r
        }));
    }
    let mut out = ClosedLoop {
        seconds: duration.as_secs_f64(),
        ..Default::default()
    };
    for t in tasks {
        if let Ok(r) = t.await {
            out.completed += r.completed;
            out.errors += r.errors;
            out.latency.extend(r.latency);
            if out.first_error.is_none() {
                out.first_error = r.first_error;
            }
        }
    }
    out.latency.sort_unstable();
    out
}

/// The `q` quantile (0..=1) of sorted samples, nearest-rank.
pub fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}
