//! A run's folder: `history.jsonl`, `timeline.json` (nemesis events),
//! `verdict.json`, `latency.png` (each operation's latency over time,
//! nemesis intervals shaded) and `index.html` tying them together, plus
//! the nodes' logs under `logs/`.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::history::{pairs, Kind, Op};
use crate::nemesis::Event;

/// Everything the run concluded.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub valid: bool,
    pub workload: String,
    pub nemeses: Vec<String>,
    pub nodes: usize,
    pub time_limit_s: u64,
    pub operations: usize,
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
    pub faults: usize,
    pub result: serde_json::Value,
}

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 400;

/// Plots each completed operation's latency (log scale, 0.1 ms to 10 s)
/// against its invocation time; green ok, orange info, red fail; nemesis
/// intervals shaded.
fn plot(path: &Path, ops: &[Op], timeline: &[Event], end: u64) -> anyhow::Result<()> {
    let area = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    area.fill(&WHITE)?;
    let end = end.max(1) as f64;
    let x = |t: u64| ((t as f64 / end) * f64::from(WIDTH - 1)) as i32;
    let (low, high) = (1e5f64.log10(), 1e10f64.log10()); // 0.1 ms .. 10 s in ns
    let y = |latency: u64| {
        let l = (latency.max(1) as f64).log10().clamp(low, high);
        (f64::from(HEIGHT - 1) * (1.0 - (l - low) / (high - low))) as i32
    };
    let mut open: Option<u64> = None;
    for event in timeline {
        match (event.phase, open) {
            ("start", _) => open = Some(event.time),
            ("stop", Some(start)) => {
                area.draw(&Rectangle::new(
                    [(x(start), 0), (x(event.time), HEIGHT as i32)],
                    RGBColor(255, 225, 225).filled(),
                ))?;
                open = None;
            }
            _ => {}
        }
    }
    // Decades of latency as grey lines: 1 ms, 10 ms, 100 ms, 1 s.
    for decade in [1e6, 1e7, 1e8, 1e9] {
        let at = y(decade as u64);
        area.draw(&PathElement::new(
            vec![(0, at), (WIDTH as i32, at)],
            RGBColor(200, 200, 200),
        ))?;
    }
    for (invoke, completion) in pairs(ops) {
        let Some(completion) = completion else {
            continue;
        };
        let color = match completion.kind {
            Kind::Ok => RGBColor(30, 150, 30),
            Kind::Info => RGBColor(230, 140, 0),
            _ => RGBColor(210, 30, 30),
        };
        let latency = completion.time.saturating_sub(invoke.time);
        area.draw(&Circle::new(
            (x(invoke.time), y(latency)),
            2,
            color.filled(),
        ))?;
    }
    area.present()?;
    Ok(())
}

fn html(verdict: &Verdict, timeline: &[Event]) -> String {
    let mut page = String::new();
    let status = if verdict.valid { "valid" } else { "INVALID" };
    let _ = write!(
        page,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>jepsen-tests: {w} / {n}</title>\
         <style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 8px;text-align:left}}</style></head><body>\
         <h1>{w} under {n}: {status}</h1>\
         <p>{nodes} nodes, {t} s, {ops} operations ({ok} ok, {fail} fail, {info} info), {faults} faults.</p>\
         <h2>Latency</h2><img src=\"latency.png\" alt=\"latency over time\">\
         <p>Each dot is one operation: x = when it was invoked (0 to {t} s), y = its latency on a log scale \
         (grey lines at 1 ms, 10 ms, 100 ms, 1 s); green ok, orange info (unknown), red fail. \
         Shaded: a fault in effect.</p>\
         <h2>Checker</h2><pre>{result}</pre>\
         <h2>Nemesis timeline</h2><table><tr><th>time (s)</th><th>nemesis</th><th>phase</th><th>detail</th></tr>",
        w = verdict.workload,
        n = verdict.nemeses.join(", "),
        nodes = verdict.nodes,
        t = verdict.time_limit_s,
        ops = verdict.operations,
        ok = verdict.ok,
        fail = verdict.fail,
        info = verdict.info,
        faults = verdict.faults,
        result = escape(&serde_json::to_string_pretty(&verdict.result).unwrap_or_default()),
    );
    for event in timeline {
        let _ = write!(
            page,
            "<tr><td>{:.1}</td><td>{:?}</td><td>{}</td><td>{}</td></tr>",
            event.time as f64 / 1e9,
            event.nemesis,
            event.phase,
            escape(&event.detail)
        );
    }
    page.push_str(
        "</table><h2>Files</h2><ul><li><a href=\"history.jsonl\">history.jsonl</a></li>\
         <li><a href=\"timeline.json\">timeline.json</a></li><li><a href=\"verdict.json\">verdict.json</a></li>\
         <li><a href=\"logs/\">node logs</a></li></ul></body></html>\n",
    );
    page
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Writes the run's folder.
pub fn write(
    dir: &Path,
    ops: &[Op],
    timeline: &[Event],
    verdict: &Verdict,
    end: u64,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("timeline.json"),
        serde_json::to_string_pretty(timeline)?,
    )?;
    std::fs::write(
        dir.join("verdict.json"),
        serde_json::to_string_pretty(verdict)?,
    )?;
    plot(&dir.join("latency.png"), ops, timeline, end)?;
    std::fs::write(dir.join("index.html"), html(verdict, timeline))?;
    Ok(())
}
