//! Micro-benchmarks of the agent's hot path, per DocSpace-shaped login event (~370 bytes, the
//! rows of tests/fixtures/login-filter.json):
//!
//! - `parse`: one page of 100 login rows, from the HTTP body to `Event`s. `page_agent_path` is
//!   what `source::docspace::Client::page` does (`docspace::page_rows` reads the envelope and
//!   decodes each row in the same pass, `Event::from_row_text` takes what it leaves); `page_lean` is the earlier way, kept as a
//!   reference: a `serde_json::Value` tree, each row moved into `Event::from_json`.
//!   `page_typed_borrowed` is the lower bound of the plain serde way: the envelope decoded by
//!   `serde_json` into typed rows that borrow their strings (`Cow<str>`), no `Event` built yet.
//!   The hand-written scanner (`src/scan.rs`) is kept only while `page_agent_path`, which also
//!   builds every `Event`, costs no more than this (ARCHITECTURE.md, "Hand-written code").
//! - `encode`: each encoder (ecs, cef, leef, json, ocsf) into a reused buffer.
//! - `syslog`: the syslog sink's record (CEF or ECS + RFC 5424 header + RFC 6587 octet count, as
//!   `SyslogSink::record` writes it for TCP), and `syslog::frame` octet counting of a batch of
//!   unframed messages (as a UDP sink writes them).
//! - `transform`: parse + CEF + framed syslog record of a whole page, copied into one buffer as
//!   `SyslogSink::send` does, per event: the figure the issue compares with a lean Rust pipeline
//!   (about 1.6 µs per ~915-byte event).
//!
//! Throughput is in elements (events), so criterion prints events/s beside the time; each
//! group runs for about 3 s (`cargo bench --bench encode` takes well under a minute).

use std::borrow::Cow;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group};
use serde_json::Value;

use docspace_siem::config::{Format, Framing, Protocol, Rfc, SyslogConfig, SyslogTls};
use docspace_siem::event::{Event, PortalInfo, Stream};
use docspace_siem::pipeline::SinkStats;
use docspace_siem::sink::syslog::SyslogSink;
use docspace_siem::source::docspace::PageRow;
use docspace_siem::syslog::frame;
use docspace_siem::transform;

const ROWS: usize = 100;

/// A `login/filter` body of 100 rows cycled from the fixture (ids and seconds made unique),
/// in the envelope the portal sends.
fn page_body() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/login-filter.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture");
    let v: Value = serde_json::from_str(&text).expect("fixture is JSON");
    let model = v["response"].as_array().expect("rows").clone();
    let rows: Vec<Value> = (0..ROWS)
        .map(|k| {
            let mut row = model[k % model.len()].clone();
            row["id"] = Value::from(1_204_116 - k as i64);
            let date = row["date"].as_str().expect("date").to_owned();
            // Same layout, distinct seconds: ...THH:MM:SS.0000000+01:00
            let sec = format!("{:02}", k % 60);
            let date = format!("{}{}{}", &date[..17], sec, &date[19..]);
            row["date"] = Value::from(date);
            row
        })
        .collect();
    let envelope = serde_json::json!({
        "response": rows,
        "count": ROWS,
        "links": [{"href": "http://127.0.0.1:40000/api/2.0/security/audit/login/filter?from=2025-01-15T00%3A00%3A00Z&to=2025-01-16T00%3A00%3A00Z&count=100&startIndex=4200", "action": "GET"}],
        "status": 0,
        "statusCode": 200,
    });
    serde_json::to_vec(&envelope).expect("serialises")
}

fn portal() -> Arc<PortalInfo> {
    Arc::new(PortalInfo::new("main", "https://docspace.example.com"))
}

/// serde_json → `Event`, rows moved out of the envelope.
fn parse_lean(body: &[u8], portal: &Arc<PortalInfo>) -> Vec<Event> {
    let v: Value = serde_json::from_slice(body).expect("json");
    let Value::Object(mut obj) = v else {
        panic!("object")
    };
    let Some(Value::Array(rows)) = obj.remove("response") else {
        panic!("rows")
    };
    rows.into_iter()
        .map(|row| Event::from_json(portal.clone(), Some(Stream::Login), row).expect("row"))
        .collect()
}

/// What `Client::page` does: the envelope read and each row decoded in one pass.
fn parse_agent_path(body: &[u8], portal: &Arc<PortalInfo>) -> Vec<Event> {
    let body = std::str::from_utf8(body).expect("utf-8");
    let rows =
        docspace_siem::source::docspace::page_rows(body, portal, Stream::Login).expect("envelope");
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(match row {
            PageRow::Event(ev) => ev,
            PageRow::Text(row) => {
                Event::from_row_text(portal.clone(), Some(Stream::Login), row).expect("row")
            }
        });
    }
    out
}

/// One DocSpace login row as typed serde would read it: strings borrowed from the body where
/// they hold no escape, every field as the server may send it (null fields omitted).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // read only to be decoded
struct LoginRow<'a> {
    id: i64,
    #[serde(borrow)]
    date: Cow<'a, str>,
    #[serde(borrow)]
    user: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    login: Option<Cow<'a, str>>,
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
    action_id: Option<i64>,
    #[serde(borrow)]
    ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    country: Option<Cow<'a, str>>,
    #[serde(borrow)]
    city: Option<Cow<'a, str>>,
    #[serde(borrow)]
    browser: Option<Cow<'a, str>>,
    #[serde(borrow)]
    platform: Option<Cow<'a, str>>,
    #[serde(borrow)]
    page: Option<Cow<'a, str>>,
}

/// The envelope, typed: only the rows are read.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    response: Vec<LoginRow<'a>>,
}

/// serde_json into typed borrowed rows (no `Event`s): the plain serde alternative's floor.
fn parse_typed_borrowed(body: &[u8]) -> usize {
    let page: Envelope<'_> = serde_json::from_slice(body).expect("json");
    page.response.len()
}

fn syslog_sink(protocol: Protocol) -> SyslogSink {
    SyslogSink::new(SyslogConfig {
        address: "127.0.0.1:514".to_owned(),
        protocol,
        framing: Framing::OctetCounting,
        rfc: Rfc::Rfc5424,
        app_name: "docspace-siem".to_owned(),
        facility: 10,
        hostname: Some("collector.example.com".to_owned()),
        // Large enough that no datagram is cut.
        max_datagram: 65_507,
        max_events_per_second: 0.0,
        write_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(10),
        tls: SyslogTls::default(),
    })
    .expect("sink")
}

fn benches(c: &mut Criterion) {
    let body = page_body();
    let portal = portal();
    let events = parse_lean(&body, &portal);
    assert_eq!(events.len(), ROWS);
    let row_bytes = (body.len() as f64) / ROWS as f64;
    eprintln!(
        "page body: {} bytes, {row_bytes:.0} bytes per row with the envelope",
        body.len()
    );

    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("page_lean", |b| {
        ran();
        b.iter(|| parse_lean(black_box(&body), &portal))
    });
    g.bench_function("page_agent_path", |b| {
        ran();
        b.iter(|| parse_agent_path(black_box(&body), &portal))
    });
    assert_eq!(parse_typed_borrowed(&body), ROWS);
    g.bench_function("page_typed_borrowed", |b| {
        ran();
        b.iter(|| parse_typed_borrowed(black_box(&body)))
    });
    g.finish();

    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(ROWS as u64));
    for (name, format) in [
        ("ecs", Format::Ecs),
        ("cef", Format::Cef),
        ("leef", Format::Leef),
        ("json", Format::Json),
        ("ocsf", Format::Ocsf),
    ] {
        let mut out = Vec::with_capacity(2048);
        g.bench_function(name, |b| {
            ran();
            b.iter(|| {
                for ev in &events {
                    out.clear();
                    transform::encode(format, black_box(ev), &mut out);
                    black_box(&out);
                }
            })
        });
    }
    g.finish();

    let mut sink = syslog_sink(Protocol::Tcp);
    let stats = SinkStats::default();
    // Unframed messages, as a UDP sink writes them.
    let mut udp = syslog_sink(Protocol::Udp);
    let messages: Vec<bytes::Bytes> = events
        .iter()
        .map(|ev| udp.record(Format::Cef, ev, &stats))
        .collect();
    let mut g = c.benchmark_group("syslog");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("cef_record", |b| {
        ran();
        b.iter(|| {
            for ev in &events {
                black_box(sink.record(Format::Cef, black_box(ev), &stats));
            }
        })
    });
    g.bench_function("ecs_record", |b| {
        ran();
        b.iter(|| {
            for ev in &events {
                black_box(sink.record(Format::Ecs, black_box(ev), &stats));
            }
        })
    });
    let mut buf = BytesMut::with_capacity(128 * 1024);
    g.bench_function("frame_octet_counting", |b| {
        ran();
        b.iter(|| {
            buf.clear();
            for m in &messages {
                frame(Framing::OctetCounting, black_box(m), &mut buf);
            }
            black_box(&buf);
        })
    });
    g.finish();

    let mut g = c.benchmark_group("transform");
    g.throughput(Throughput::Elements(ROWS as u64));
    let mut buf = BytesMut::with_capacity(128 * 1024);
    g.bench_function("page_to_cef_syslog_frames", |b| {
        ran();
        b.iter(|| {
            let events = parse_agent_path(black_box(&body), &portal);
            buf.clear();
            for ev in &events {
                let r = sink.record(Format::Cef, ev, &stats);
                buf.extend_from_slice(&r);
            }
            black_box(&buf);
        })
    });
    g.finish();
}

criterion_group! {
    name = encode;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(2500))
        .sample_size(30);
    targets = benches
}

/// `criterion_main!`, plus a closing summary when `cargo test --all-targets` runs this in
/// criterion's test mode (every benchmark once): a panic in any of them aborts before it.
fn main() {
    encode();
    Criterion::default().configure_from_args().final_summary();
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "encode: {} passed, 0 failed",
            RAN.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
}

/// Benchmarks run (in test mode: each once).
static RAN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn ran() {
    RAN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}
