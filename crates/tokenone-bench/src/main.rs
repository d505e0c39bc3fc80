//! `tokenone-bench`: the repository benchmark (operations.md, "Performance targets").
//!
//! It starts a zero-delay mock OpenAI upstream in-process, starts the release gateway as a
//! subprocess pinned to one core (`taskset -c 0`) against a fresh database, pins itself (load
//! generator and mock) to another core with `sched_setaffinity` (the `core_affinity` crate, set
//! on the main thread before any other thread exists, so every thread inherits it), and measures
//! side by side: DIRECT (to the mock), RELAY (a minimal hyper relay pinned like the gateway: the
//! floor any proxy pays for the extra hop and for crossing cores) and GATEWAY — fixed-rate latency
//! (open loop, measured from each request's scheduled send time), closed-loop saturation
//! throughput, streaming time to first byte, the gateway's peak RSS and its start-to-ready time
//! on an existing database.
//!
//! Not a test: nothing here runs under `cargo test`. See bench/README.md.

mod gateway;
mod load;
mod mock;
mod relay;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use gateway::{Gateway, Launch};
use load::{quantile, ClosedLoop, OpenLoop, Pool, Target};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "tokenone-bench",
    about = "TokenOne's benchmark: direct-to-mock vs through-gateway"
)]
struct Args {
    /// The gateway binary (build it with `cargo build --release -p tokenone`).
    #[arg(long, default_value = "target/release/tokenone")]
    gateway: PathBuf,
    /// Run on a fresh database on this PostgreSQL server (e.g. postgres://postgres@127.0.0.1:5432)
    /// instead of a fresh SQLite file.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Give the gateway this Redis (e.g. redis://127.0.0.1:6379) for rate limiting.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Seconds of each measured phase.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of unmeasured warm-up before each phase.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Fixed rate (requests per second) of the non-streaming latency phase.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Fixed rate of the streaming time-to-first-byte phase.
    #[arg(long, default_value_t = 200.0)]
    stream_rate: f64,
    /// Keep-alive connections of the load generator (pool for fixed rates, workers at saturation).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Size of the non-streaming request body, in bytes.
    #[arg(long, default_value_t = 1024)]
    prompt_bytes: usize,
    /// Core the gateway (and the relay) is pinned to (`taskset -c`).
    #[arg(long, default_value_t = 0)]
    gateway_core: usize,
    /// Core this process (load generator and mock) is pinned to.
    #[arg(long, default_value_t = 1)]
    bench_core: usize,
    /// Skip the saturation phase.
    #[arg(long)]
    no_saturation: bool,
    /// Pin the local processes with these names (e.g. `postgres,redis-server`) to the load
    /// generator's core for the run, so the database does not share the gateway's core; their
    /// affinity is restored at the end.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pin_services: Vec<String>,
    /// Skip the minimal-relay baseline.
    #[arg(long)]
    no_relay: bool,
    /// Internal: run as the minimal relay, listening here.
    #[arg(long, hide = true, value_name = "ADDR")]
    relay_listen: Option<SocketAddr>,
    /// Internal: the relay's upstream (the mock).
    #[arg(long, hide = true, value_name = "ADDR")]
    relay_upstream: Option<SocketAddr>,
}

const PROXY_PATH: &str = "/v1/openai-proxy/v1/chat/completions";
const MOCK_PATH: &str = "/v1/chat/completions";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let (Some(listen), Some(upstream)) = (args.relay_listen, args.relay_upstream) {
        // The relay runs on the same kind of runtime as the gateway (`#[tokio::main]`), pinned by
        // the `taskset` that started it.
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        return rt.block_on(relay::run(listen, upstream, MOCK_PATH));
    }
    // Pin before the runtime exists: threads created later inherit the affinity.
    let pinned = pin_self(args.bench_core);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run(args, pinned))
}

fn pin_self(core: usize) -> bool {
    let available = core_affinity::get_core_ids().unwrap_or_default();
    if !available.iter().any(|c| c.id == core) {
        eprintln!("warning: core {core} is not available to this process; the load generator is not pinned");
        return false;
    }
    let ok = core_affinity::set_for_current(core_affinity::CoreId { id: core });
    if !ok {
        eprintln!("warning: could not pin the load generator to core {core}");
    }
    ok
}

/// A chat-completions body of about `size` bytes (a system prompt and one user message).
fn prompt(size: usize, stream: bool) -> Bytes {
    let make = |content: &str| {
        let mut v = serde_json::json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": content}
            ],
            "max_tokens": 64
        });
        if stream {
            v["stream"] = serde_json::Value::Bool(true);
        }
        serde_json::to_vec(&v).unwrap_or_default()
    };
    let base = make("").len();
    let filler = "The quick brown fox jumps over the lazy dog while the benchmark counts microseconds. ";
    let content: String = filler.chars().cycle().take(size.saturating_sub(base)).collect();
    Bytes::from(make(&content))
}

/// One column of the table: what a path measured.
#[derive(Default)]
struct Side {
    fixed: OpenLoop,
    stream: OpenLoop,
    sat: Option<ClosedLoop>,
}

struct Figures {
    direct: Side,
    relay: Option<Side>,
    gateway: Side,
    gateway_cpu_fixed: Option<Duration>,
    switches_fixed: Option<u64>,
    gateway_cpu_sat: Option<Duration>,
    switches_sat: Option<f64>,
    peak_rss_kb: Option<u64>,
    setup_rss_kb: Option<u64>,
    backlog: Option<f64>,
    drained: Option<Duration>,
    ready_fresh: Duration,
    ready_existing: Duration,
    shutdown: Duration,
}

/// The minimal relay as a pinned subprocess of this binary; killed on drop.
struct Relay {
    child: Child,
    addr: SocketAddr,
}

impl Relay {
    async fn start(core: Option<usize>, upstream: SocketAddr) -> anyhow::Result<Relay> {
        let exe = std::env::current_exe()?;
        let addr: SocketAddr = format!("127.0.0.1:{}", gateway::free_port()?).parse()?;
        let mut cmd = match core {
            Some(core) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(core.to_string()).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let child = cmd
            .arg("--relay-listen")
            .arg(addr.to_string())
            .arg("--relay-upstream")
            .arg(upstream.to_string())
            .stdin(Stdio::null())
            .spawn()
            .context("starting the relay")?;
        let relay = Relay { child, addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "the relay did not start");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(relay)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn run(args: Args, pinned: bool) -> anyhow::Result<()> {
    let binary = gateway::absolute(&args.gateway)?;
    let (mock_addr, served) = mock::start().await?;
    let tmp = tempfile::Builder::new().prefix("tokenone-bench-").tempdir()?;

    let taskset = gateway::taskset_available();
    if !taskset {
        eprintln!("warning: taskset not found; the gateway is NOT pinned to a core (figures will not compare)");
    }
    let (db_url, pg_db) = match &args.postgres {
        Some(server) => {
            let (url, name) = gateway::create_pg_database(server).await?;
            (url, Some((server.clone(), name)))
        }
        None => (format!("sqlite://{}", tmp.path().join("tokenone.db").display()), None),
    };
    if args.postgres.is_some() && args.redis.is_none() {
        eprintln!("note: no --redis: the gateway rate-limits in-process");
    }
    let backend = match (&args.postgres, &args.redis) {
        (Some(_), Some(_)) => "PostgreSQL + Redis",
        (Some(_), None) => "PostgreSQL",
        (None, Some(_)) => "SQLite + Redis",
        (None, None) => "SQLite",
    };
    let addr: SocketAddr = format!("127.0.0.1:{}", gateway::free_port()?).parse()?;
    let mut env = vec![
        ("DATABASE_URL".to_string(), db_url),
        ("TOKENONE_BIND".into(), addr.to_string()),
        ("TOKENONE_MASTER_KEY".into(), gateway::master_key()),
        ("TOKENONE_ADMIN_EMAIL".into(), gateway::ADMIN_EMAIL.into()),
        ("TOKENONE_ADMIN_PASSWORD".into(), gateway::ADMIN_PASSWORD.into()),
        (
            "TOKENONE_PROVIDERS__OPENAI__BASE_URL".into(),
            format!("http://{mock_addr}/v1"),
        ),
        (
            "TOKENONE_PROVIDERS__OPENAI__API_KEY".into(),
            gateway::UPSTREAM_KEY.into(),
        ),
        ("TOKENONE_RATELIMIT__OPENAI_PER_MINUTE".into(), "10000000".into()),
        ("TOKENONE_LOG".into(), "warn".into()),
    ];
    if let Some(r) = &args.redis {
        env.push(("REDIS_URL".into(), r.clone()));
    }
    let launch = Launch {
        binary,
        core: taskset.then_some(args.gateway_core),
        env,
        dir: tmp.path().to_path_buf(),
        log: tmp.path().join("gateway.log"),
        addr,
    };

    eprintln!(
        "tokenone-bench: {backend}; gateway {} on core {}, load generator + mock on core {} ({})",
        launch.binary.display(),
        args.gateway_core,
        args.bench_core,
        if pinned { "pinned" } else { "NOT pinned" }
    );
    let services = gateway::PinnedServices::pin(&args.pin_services, args.bench_core);
    if services.count() > 0 {
        eprintln!(
            "services {} ({} processes) pinned to core {}",
            args.pin_services.join(", "),
            services.count(),
            args.bench_core
        );
    }
    let relay = if args.no_relay {
        None
    } else {
        Some(Relay::start(taskset.then_some(args.gateway_core), mock_addr).await?)
    };
    let t0 = Instant::now();
    let mut gw = Some(launch.spawn()?);
    let result = measure(
        &args,
        &launch,
        &mut gw,
        relay.as_ref().map(|r| r.addr),
        (mock_addr, served),
        t0,
    )
    .await;
    drop(relay);
    let figures = match result {
        Ok(f) => f,
        Err(e) => {
            let tail = std::fs::read_to_string(&launch.log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().collect();
            let tail = tail[tail.len().saturating_sub(30)..].join("\n");
            if let Some(g) = gw.take() {
                let _ = g.stop(Duration::from_secs(35)).await;
            }
            if let Some((server, name)) = &pg_db {
                let _ = gateway::drop_pg_database(server, name).await;
            }
            return Err(e.context(format!("gateway log:\n{tail}")));
        }
    };
    if let Some((server, name)) = &pg_db {
        if let Err(e) = gateway::drop_pg_database(server, name).await {
            eprintln!("warning: could not drop the benchmark database {name}: {e}");
        }
    }
    report(&args, backend, &figures);
    Ok(())
}

/// Warm-up (not kept), then the measured fixed-rate run.
async fn fixed(pool: &Arc<Pool>, target: &Arc<Target>, rate: f64, args: &Args) -> OpenLoop {
    let warmup = Duration::from_secs_f64(args.warmup);
    load::open_loop(pool.clone(), target.clone(), rate, warmup).await;
    load::open_loop(
        pool.clone(),
        target.clone(),
        rate,
        Duration::from_secs_f64(args.duration),
    )
    .await
}

/// A closed loop; the mock's own count over the whole run (warm-up included) cross-checks the
/// load generator's.
async fn saturate(target: &Arc<Target>, served: &AtomicU64, args: &Args) -> ClosedLoop {
    let warmup = Duration::from_secs_f64(args.warmup);
    let duration = Duration::from_secs_f64(args.duration);
    let n0 = served.load(Ordering::Relaxed);
    let mut r = load::closed_loop(target.clone(), args.connections, warmup, duration).await;
    r.upstream_rate = (served.load(Ordering::Relaxed) - n0) as f64 / (args.warmup + args.duration);
    r
}

fn delta<T: std::ops::Sub<Output = T> + Copy>(before: Option<T>, after: Option<T>) -> Option<T> {
    Some(after? - before?)
}

async fn measure(
    args: &Args,
    launch: &Launch,
    slot: &mut Option<Gateway>,
    relay: Option<SocketAddr>,
    (mock_addr, served): (SocketAddr, Arc<AtomicU64>),
    t0: Instant,
) -> anyhow::Result<Figures> {
    let gw = slot.as_mut().context("no gateway")?;
    let ready = gw.wait_ready(Duration::from_secs(60)).await?;
    let ready_fresh = ready - t0;
    let key = gw.live_key().await.context("setting up a project and a live key")?;
    let pid = gw.pid();

    let body = prompt(args.prompt_bytes, false);
    let stream_body = prompt(args.prompt_bytes, true);
    let targets = |addr: SocketAddr, path: &str, bearer: &str| -> anyhow::Result<(Arc<Target>, Arc<Target>)> {
        Ok((
            Arc::new(Target::new(addr, path, bearer, body.clone(), false)?),
            Arc::new(Target::new(addr, path, bearer, stream_body.clone(), true)?),
        ))
    };
    let direct = targets(mock_addr, MOCK_PATH, gateway::UPSTREAM_KEY)?;
    let via = targets(gw.addr, PROXY_PATH, &key)?;
    let relayed = relay.map(|a| targets(a, PROXY_PATH, &key)).transpose()?;

    // A first call proves the path works end to end before any timing.
    let mut probe = load::connect(gw.addr).await?;
    let o = load::send(&mut probe, &via.0).await?;
    anyhow::ensure!(o.ok, "the first call through the gateway failed");
    drop(probe);

    let direct_pool = Pool::open(mock_addr, args.connections).await?;
    let via_pool = Pool::open(gw.addr, args.connections).await?;
    let relay_pool = match relay {
        Some(a) => Some(Pool::open(a, args.connections).await?),
        None => None,
    };
    let mut d = Side::default();
    let mut r = relayed.as_ref().map(|_| Side::default());
    let mut g = Side::default();

    eprintln!("fixed rate: {} req/s, non-streaming", args.rate);
    d.fixed = fixed(&direct_pool, &direct.0, args.rate, args).await;
    if let (Some(side), Some(pool), Some(t)) = (r.as_mut(), &relay_pool, &relayed) {
        side.fixed = fixed(pool, &t.0, args.rate, args).await;
    }
    // The set-up (admin login: Argon2id at 19 MiB by auth.md) has its own peak. The target is
    // the peak under load, so the high-water mark is reset when the gateway's first load phase
    // starts (clear_refs "5", Linux >= 4.0) and read after the last; the set-up peak is shown too.
    let setup_rss_kb = gateway::proc_status_kb(pid, "VmHWM");
    if let Err(e) = std::fs::write(format!("/proc/{pid}/clear_refs"), "5") {
        eprintln!("warning: could not reset the gateway's peak RSS ({e}); it includes the set-up");
    }
    let (cpu0, cs0) = (gateway::cpu_time(pid), gateway::context_switches(pid));
    g.fixed = fixed(&via_pool, &via.0, args.rate, args).await;
    // Warm-up included: scaled to the measured part below.
    let scale = args.duration / (args.duration + args.warmup);
    let gateway_cpu_fixed = delta(cpu0, gateway::cpu_time(pid)).map(|c| c.mul_f64(scale));
    let switches_fixed = delta(cs0, gateway::context_switches(pid)).map(|c| (c as f64 * scale) as u64);

    eprintln!("streaming: {} req/s", args.stream_rate);
    d.stream = fixed(&direct_pool, &direct.1, args.stream_rate, args).await;
    if let (Some(side), Some(pool), Some(t)) = (r.as_mut(), &relay_pool, &relayed) {
        side.stream = fixed(pool, &t.1, args.stream_rate, args).await;
    }
    g.stream = fixed(&via_pool, &via.1, args.stream_rate, args).await;
    drop((direct_pool, via_pool, relay_pool));

    let (mut gateway_cpu_sat, mut switches_sat) = (None, None);
    if !args.no_saturation {
        eprintln!("saturation: closed loop, {} connections", args.connections);
        d.sat = Some(saturate(&direct.0, &served, args).await);
        if let (Some(side), Some(t)) = (r.as_mut(), &relayed) {
            side.sat = Some(saturate(&t.0, &served, args).await);
        }
        let (cpu0, cs0) = (gateway::cpu_time(pid), gateway::context_switches(pid));
        let sat = saturate(&via.0, &served, args).await;
        gateway_cpu_sat = delta(cpu0, gateway::cpu_time(pid)).map(|c| c.mul_f64(scale));
        // Per upstream call over the whole closed loop, warm-up included.
        let calls = sat.upstream_rate * (args.duration + args.warmup);
        switches_sat = delta(cs0, gateway::context_switches(pid)).map(|c| c as f64 / calls.max(1.0));
        g.sat = Some(sat);
    }

    // The call writer works off the request path: how far behind is it, how long to catch up?
    let backlog = gw.metric("settlement_queue_depth").await;
    let drain_started = Instant::now();
    let mut drained = None;
    if backlog.is_some() {
        while drain_started.elapsed() < Duration::from_secs(120) {
            if gw.metric("settlement_queue_depth").await.is_some_and(|d| d <= 0.0) {
                drained = Some(drain_started.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let peak_rss_kb = gateway::proc_status_kb(pid, "VmHWM");

    eprintln!("restart on the existing database");
    let (shutdown, status) = slot.take().context("no gateway")?.stop(Duration::from_secs(35)).await?;
    if status != "exit status: 0" {
        eprintln!("warning: the gateway exited with {status} after SIGTERM");
    }
    let t1 = Instant::now();
    let gw = slot.insert(launch.spawn()?);
    let ready_existing = gw.wait_ready(Duration::from_secs(60)).await? - t1;
    slot.take().context("no gateway")?.stop(Duration::from_secs(35)).await?;

    Ok(Figures {
        direct: d,
        relay: r,
        gateway: g,
        gateway_cpu_fixed,
        switches_fixed,
        gateway_cpu_sat,
        switches_sat,
        peak_rss_kb,
        setup_rss_kb,
        backlog,
        drained,
        ready_fresh,
        ready_existing,
        shutdown,
    })
}

fn ms(ns: Option<u64>) -> String {
    ns.map(|n| format!("{:.3}", n as f64 / 1e6))
        .unwrap_or_else(|| "-".into())
}

fn added_ms(g: Option<u64>, d: Option<u64>) -> Option<f64> {
    Some((g? as f64 - d? as f64) / 1e6)
}

fn added(g: Option<u64>, d: Option<u64>) -> String {
    added_ms(g, d).map(|v| format!("{v:+.3}")).unwrap_or_else(|| "-".into())
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

/// A table row: label, direct, relay, gateway, gateway − direct, gateway − relay.
fn row(label: &str, cells: [String; 5]) {
    let [d, r, g, a, o] = cells;
    println!("  {label:<38}{d:>10}{r:>10}{g:>10}{a:>10}{o:>10}");
}

fn note(label: &str, value: String) {
    row(
        label,
        [String::new(), String::new(), value, String::new(), String::new()],
    );
}

fn report(args: &Args, backend: &str, f: &Figures) {
    let none = OpenLoop::default();
    let relay_fixed = f.relay.as_ref().map(|r| &r.fixed).unwrap_or(&none);
    let relay_stream = f.relay.as_ref().map(|r| &r.stream).unwrap_or(&none);
    // Percentile row: the three columns and the two differences.
    let pct = |label: &str, d: &[u64], r: &[u64], g: &[u64], q: f64| {
        let (d, r, g) = (quantile(d, q), quantile(r, q), quantile(g, q));
        row(label, [ms(d), ms(r), ms(g), added(g, d), added(g, r)]);
    };
    let count = |o: &OpenLoop| {
        if o.sent == 0 {
            "-".to_string()
        } else {
            format!("{} ({})", o.sent, o.errors)
        }
    };
    println!();
    println!(
        "TokenOne benchmark: {backend}; gateway{} on core {}, load generator + mock{} on core {}",
        if f.relay.is_some() { " and relay" } else { "" },
        args.gateway_core,
        args.pin_services
            .iter()
            .filter(|n| !n.is_empty())
            .map(|n| format!(" + {n}"))
            .collect::<String>(),
        args.bench_core
    );
    row(
        "",
        [
            "direct".into(),
            "relay".into(),
            "gateway".into(),
            "gw-direct".into(),
            "gw-relay".into(),
        ],
    );
    println!(
        "fixed rate {} req/s, {} s, non-streaming, {} B prompt (ms, open loop, from scheduled send)",
        args.rate, args.duration, args.prompt_bytes
    );
    let (d, g) = (&f.direct.fixed, &f.gateway.fixed);
    row(
        "requests (errors)",
        [count(d), count(relay_fixed), count(g), String::new(), String::new()],
    );
    for (label, q) in [
        ("p50", 0.5),
        ("p90", 0.9),
        ("p99", 0.99),
        ("p99.9", 0.999),
        ("max", 1.0),
    ] {
        pct(label, &d.latency, &relay_fixed.latency, &g.latency, q);
    }
    row(
        "load generator lag p99",
        [
            ms(quantile(&d.lag, 0.99)),
            ms(quantile(&relay_fixed.lag, 0.99)),
            ms(quantile(&g.lag, 0.99)),
            String::new(),
            String::new(),
        ],
    );
    let us = |q: f64| quantile(&g.overhead_us, q).map(|x| x * 1000);
    note(
        "x-tokenone-overhead-ms p50 / p90",
        format!("{}/{}", ms(us(0.5)), ms(us(0.9))),
    );
    let slow = g.overhead_us.iter().filter(|&&u| u > 1000).count();
    row(
        "x-tokenone-overhead-ms p99 / share >1ms",
        [
            String::new(),
            String::new(),
            ms(us(0.99)),
            format!("{:.1}%", slow as f64 * 100.0 / g.overhead_us.len().max(1) as f64),
            String::new(),
        ],
    );
    if let Some(cpu) = f.gateway_cpu_fixed {
        row(
            "gateway CPU per request / core busy",
            [
                String::new(),
                String::new(),
                format!("{:.0} us", cpu.as_secs_f64() * 1e6 / g.sent.max(1) as f64),
                format!("{:.0}%", cpu.as_secs_f64() / args.duration * 100.0),
                String::new(),
            ],
        );
    }
    if let Some(cs) = f.switches_fixed {
        note(
            "gateway context switches per request",
            format!("{:.1}", cs as f64 / g.sent.max(1) as f64),
        );
    }

    println!(
        "streaming, {} req/s, {} s (time to first byte, ms, from scheduled send)",
        args.stream_rate, args.duration
    );
    let (d, g) = (&f.direct.stream, &f.gateway.stream);
    row(
        "requests (errors)",
        [count(d), count(relay_stream), count(g), String::new(), String::new()],
    );
    for (label, q) in [("TTFB p50", 0.5), ("TTFB p99", 0.99), ("TTFB max", 1.0)] {
        pct(label, &d.ttfb, &relay_stream.ttfb, &g.ttfb, q);
    }

    if let (Some(d), Some(g)) = (&f.direct.sat, &f.gateway.sat) {
        let r = f.relay.as_ref().and_then(|r| r.sat.as_ref());
        let each = |v: &dyn Fn(&ClosedLoop) -> String| [v(d), r.map(v).unwrap_or_else(|| "-".into()), v(g)];
        println!(
            "saturation, closed loop, {} connections, {} s",
            args.connections, args.duration
        );
        let [a, b, c] = each(&|s| format!("{:.0}", s.throughput()));
        row("throughput (req/s)", [a, b, c, String::new(), String::new()]);
        let [a, b, c] = each(&|s| format!("{:.0}", s.upstream_rate));
        row(
            "mock-confirmed req/s (with warm-up)",
            [a, b, c, String::new(), String::new()],
        );
        let [a, b, c] = each(&|s| s.errors.to_string());
        row("errors", [a, b, c, String::new(), String::new()]);
        let none = Vec::new();
        let rl = r.map(|r| &r.latency).unwrap_or(&none);
        pct("latency p50", &d.latency, rl, &g.latency, 0.5);
        pct("latency p99", &d.latency, rl, &g.latency, 0.99);
        if let Some(cpu) = f.gateway_cpu_sat {
            row(
                "gateway CPU per request / core busy",
                [
                    String::new(),
                    String::new(),
                    format!("{:.0} us", cpu.as_secs_f64() * 1e6 / (g.completed.max(1) as f64)),
                    format!("{:.0}%", cpu.as_secs_f64() / args.duration * 100.0),
                    String::new(),
                ],
            );
        }
        if let Some(cs) = f.switches_sat {
            note("gateway context switches per request", format!("{cs:.1}"));
        }
    }

    println!("gateway process");
    let mib = f.peak_rss_kb.map(|k| k as f64 / 1024.0);
    note(
        "peak RSS under load (VmHWM)",
        mib.map(|m| format!("{m:.1} MiB")).unwrap_or_else(|| "-".into()),
    );
    note(
        "peak RSS of the set-up (login, Argon2id)",
        f.setup_rss_kb
            .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "-".into()),
    );
    row(
        "call-writer backlog at end / drained in",
        [
            String::new(),
            String::new(),
            f.backlog.map(|b| format!("{b:.0}")).unwrap_or_else(|| "-".into()),
            f.drained
                .map(|d| format!("{} ms", d.as_millis()))
                .unwrap_or_else(|| "-".into()),
            String::new(),
        ],
    );
    note(
        "start to ready, fresh database",
        format!("{} ms", f.ready_fresh.as_millis()),
    );
    note(
        "start to ready, existing database",
        format!("{} ms", f.ready_existing.as_millis()),
    );
    note("SIGTERM to exit", format!("{} ms", f.shutdown.as_millis()));

    let sides = [
        ("direct", Some(&f.direct)),
        ("relay", f.relay.as_ref()),
        ("gateway", Some(&f.gateway)),
    ];
    for (name, side) in sides {
        let Some(s) = side else { continue };
        for (phase, e) in [
            ("fixed", &s.fixed.first_error),
            ("stream", &s.stream.first_error),
            ("saturation", &s.sat.as_ref().and_then(|s| s.first_error.clone())),
        ] {
            if let Some(e) = e {
                println!("  first error ({name}, {phase}): {e}");
            }
        }
    }

    println!("targets (operations.md, gateway minus direct)");
    let (d, g) = (&f.direct.fixed, &f.gateway.fixed);
    let p50 = added_ms(quantile(&g.latency, 0.5), quantile(&d.latency, 0.5));
    let p99 = added_ms(quantile(&g.latency, 0.99), quantile(&d.latency, 0.99));
    let ttfb = added_ms(
        quantile(&f.gateway.stream.ttfb, 0.99),
        quantile(&f.direct.stream.ttfb, 0.99),
    );
    let target = |label: &str, value: String, ok: bool| println!("  {label:<48}{value:>14}  {}", verdict(ok));
    let msv = |v: Option<f64>| v.map(|v| format!("{v:.3} ms")).unwrap_or_default();
    target(
        "added latency p50 <= 0.2 ms",
        msv(p50),
        p50.is_some_and(|v| v <= 0.2) && g.errors == 0,
    );
    target(
        "added latency p99 <= 1 ms",
        msv(p99),
        p99.is_some_and(|v| v <= 1.0) && g.errors == 0,
    );
    if let Some(s) = &f.gateway.sat {
        target(
            "saturation >= 5,000 req/s, zero errors",
            format!("{:.0} req/s", s.throughput()),
            s.throughput() >= 5000.0 && s.errors == 0,
        );
    }
    target(
        "streaming TTFB added p99 <= 1 ms",
        msv(ttfb),
        ttfb.is_some_and(|v| v <= 1.0) && f.gateway.stream.errors == 0,
    );
    target(
        "peak RSS <= 64 MiB",
        mib.map(|m| format!("{m:.1} MiB")).unwrap_or_default(),
        mib.is_some_and(|m| m <= 64.0),
    );
    target(
        "start to ready <= 200 ms (existing database)",
        format!("{} ms", f.ready_existing.as_millis()),
        f.ready_existing <= Duration::from_millis(200),
    );
}
