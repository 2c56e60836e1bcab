//! A paced click poster for `scripts/bench-clicks.sh` (issue #13): `POST /v1/users/{id}/events`
//! at a fixed rate, each for a new random user (so the click store fills and keeps evicting),
//! with one click on a catalogue item `i0..i{items-1}`.
//!
//! ```sh
//! cargo build --release -p bench-harness
//! target/release/event_poster --url http://127.0.0.1:18720 --rate 5000 --seconds 20 \
//!     [--items 20000] [--in-flight 64] [--token TOKEN]
//! ```
//!
//! Every 10 ms it starts `rate / 100` requests; at most `--in-flight` are outstanding, and a
//! request that would exceed that is skipped and counted, so the rate achieved is honest rather
//! than queued. Prints one JSON line: sent, accepted (202), other statuses, errors, skipped and
//! the accepted rate per second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bench_harness::Flags;
use tokio::sync::Semaphore;

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    accepted: AtomicU64,
    other: AtomicU64,
    errors: AtomicU64,
    skipped: AtomicU64,
}

struct Args {
    url: String,
    rate: u64,
    seconds: u64,
    items: u64,
    in_flight: usize,
    token: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut flags = Flags::from_args()?;
    Ok(Args {
        url: flags.take("url").context("--url is required")?,
        rate: flags.parse_or("rate", 5000)?,
        seconds: flags.parse_or("seconds", 20)?,
        items: flags.parse_or("items", 20_000u64)?.max(1),
        in_flight: flags.parse_or("in-flight", 64usize)?.max(1),
        token: flags.take("token"),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    shared_lib::telemetry::install_tls_provider();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.in_flight)
        .build()?;
    let counts = Arc::new(Counts::default());
    let slots = Arc::new(Semaphore::new(args.in_flight));
    let per_tick = (args.rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let mut item = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    while Instant::now() < end {
        tick.tick().await;
        for _ in 0..per_tick {
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                counts.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            item = (item + 7919) % args.items;
            let url = format!("{}/v1/users/load-{}/events", args.url, uuid::Uuid::new_v4());
            let body = format!(r#"{{"events": [{{"item_id": "i{item}"}}]}}"#);
            let mut request = client
                .post(url)
                .header("content-type", "application/json")
                .body(body);
            if let Some(token) = &args.token {
                request = request.bearer_auth(token);
            }
            let counts = counts.clone();
            counts.sent.fetch_add(1, Ordering::Relaxed);
            tasks.spawn(async move {
                let counter = match request.send().await {
                    Ok(res) if res.status().as_u16() == 202 => &counts.accepted,
                    Ok(_) => &counts.other,
                    Err(_) => &counts.errors,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                drop(slot);
            });
        }
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed().as_secs_f64();
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let line = serde_json::json!({
        "target_rate": args.rate,
        "seconds": elapsed,
        "sent": get(&counts.sent),
        "accepted": get(&counts.accepted),
        "other_status": get(&counts.other),
        "errors": get(&counts.errors),
        "skipped": get(&counts.skipped),
        "accepted_per_second": get(&counts.accepted) as f64 / elapsed,
    });
    #[expect(clippy::print_stdout, reason = "the benchmark script reads this line")]
    {
        println!("{line}");
    }
    Ok(())
}
