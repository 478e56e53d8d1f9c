//! SVG charts of `runnel bench` results: latency by percentile on the usual
//! log-scaled 1/(1−p) axis, and p50/p99 against throughput.
//!
//! The SVG is written directly (axes, ticks, labels, polylines, legend): a
//! charting crate would need system font libraries just to emit `<text>`.

use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use runnel::{EngineError, Result};

/// What a chart needs of one run.
pub struct PlotRun<'a> {
    /// Legend text.
    pub label: String,
    /// `continuous` or `microbatch`.
    pub mode: &'a str,
    /// Latency in ns.
    pub histogram: &'a Histogram<u64>,
    /// Achieved events per second.
    pub throughput: f64,
    /// Median latency, µs.
    pub p50: f64,
    /// 99th percentile, µs.
    pub p99: f64,
}

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];
const W: f64 = 960.0;
const H: f64 = 600.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 60.0;
const BOTTOM: f64 = 70.0;

/// A chart with logarithmic axes on both sides.
struct LogChart {
    svg: String,
    x: (f64, f64),
    y: (f64, f64),
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Powers of ten covering `lo..=hi`, with 2× and 5× steps when few.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi * 1.0001 {
        for m in [1.0, 2.0, 5.0] {
            let t = decade * m;
            if t >= lo * 0.9999 && t <= hi * 1.0001 {
                ticks.push(t);
            }
        }
        decade *= 10.0;
    }
    if ticks.len() > 12 {
        ticks
            .retain(|t| (t.log10().fract()).abs() < 1e-9 || (t.log10().fract() - 1.0).abs() < 1e-9);
    }
    ticks
}

fn number(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{}M", v / 1_000_000.0)
    } else if v >= 1_000.0 {
        format!("{}k", v / 1_000.0)
    } else if v >= 1.0 {
        format!("{v}")
    } else {
        format!("{v:.2}")
    }
}

impl LogChart {
    fn new(title: &str, x: (f64, f64), y: (f64, f64), x_desc: &str, y_desc: &str) -> LogChart {
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif">"#
        );
        let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="32" font-size="20" text-anchor="middle">{}</text>"#,
            W / 2.0,
            escape(title)
        );
        let _ = writeln!(
            svg,
            r#"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="black"/>"#,
            W - LEFT - RIGHT,
            H - TOP - BOTTOM
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" font-size="14" text-anchor="middle">{}</text>"#,
            LEFT + (W - LEFT - RIGHT) / 2.0,
            H - 20.0,
            escape(x_desc)
        );
        let _ = writeln!(
            svg,
            r#"<text x="24" y="{}" font-size="14" text-anchor="middle" transform="rotate(-90 24 {})">{}</text>"#,
            TOP + (H - TOP - BOTTOM) / 2.0,
            TOP + (H - TOP - BOTTOM) / 2.0,
            escape(y_desc)
        );
        LogChart { svg, x, y }
    }

    fn px(&self, x: f64) -> f64 {
        let t = (x.log10() - self.x.0.log10()) / (self.x.1.log10() - self.x.0.log10());
        LEFT + t * (W - LEFT - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        let t = (y.log10() - self.y.0.log10()) / (self.y.1.log10() - self.y.0.log10());
        H - BOTTOM - t * (H - TOP - BOTTOM)
    }

    fn x_tick(&mut self, x: f64, label: &str) {
        let p = self.px(x);
        let _ = writeln!(
            self.svg,
            r##"<line x1="{p:.1}" y1="{TOP}" x2="{p:.1}" y2="{}" stroke="#ddd"/><text x="{p:.1}" y="{}" font-size="12" text-anchor="middle">{}</text>"##,
            H - BOTTOM,
            H - BOTTOM + 18.0,
            escape(label)
        );
    }

    fn y_ticks(&mut self) {
        for t in log_ticks(self.y.0, self.y.1) {
            let p = self.py(t);
            let _ = writeln!(
                self.svg,
                r##"<line x1="{LEFT}" y1="{p:.1}" x2="{}" y2="{p:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="12" text-anchor="end">{}</text>"##,
                W - RIGHT,
                LEFT - 6.0,
                p + 4.0,
                number(t)
            );
        }
    }

    fn line(&mut self, points: &[(f64, f64)], color: &str, dots: bool) {
        let coords: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", self.px(*x), self.py(*y)))
            .collect();
        let _ = writeln!(
            self.svg,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            coords.join(" ")
        );
        if dots {
            for (x, y) in points {
                let _ = writeln!(
                    self.svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"/>"#,
                    self.px(*x),
                    self.py(*y)
                );
            }
        }
    }

    fn legend(&mut self, entries: &[(String, &str)]) {
        for (i, (label, color)) in entries.iter().enumerate() {
            let y = TOP + 18.0 + i as f64 * 20.0;
            let _ = writeln!(
                self.svg,
                r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}" font-size="13">{}</text>"#,
                LEFT + 12.0,
                LEFT + 36.0,
                LEFT + 42.0,
                y + 4.0,
                escape(label)
            );
        }
    }

    fn write(mut self, path: &Path) -> Result<()> {
        self.svg.push_str("</svg>\n");
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
        }
        std::fs::write(path, self.svg).map_err(|e| err(path, e))
    }
}

fn err(path: &Path, e: impl std::fmt::Display) -> EngineError {
    EngineError::Plan(format!("plot {}: {e}", path.display()))
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (0.1, 10.0);
    }
    let lo = 10f64.powf(lo.max(0.01).log10().floor());
    let hi = 10f64.powf(hi.max(lo * 10.0).log10().ceil());
    (lo, hi)
}

/// Latency (µs, log scale) by percentile (50% … 99.999%), one line per run.
pub fn percentile_chart(path: &Path, runs: &[PlotRun<'_>]) -> Result<()> {
    let series: Vec<Vec<(f64, f64)>> = runs
        .iter()
        .map(|r| {
            r.histogram
                .iter_quantiles(5)
                .map(|v| {
                    (
                        v.quantile_iterated_to(),
                        v.value_iterated_to() as f64 / 1000.0,
                    )
                })
                .filter(|(q, _)| *q >= 0.5 && *q <= 0.99999)
                .map(|(q, us)| (1.0 / (1.0 - q), us.max(0.01)))
                .collect()
        })
        .collect();
    let y = bounds(series.iter().flatten().map(|p| p.1));
    let mut chart = LogChart::new(
        "runnel end-to-end latency by percentile (open loop)",
        (2.0, 100_000.0),
        y,
        "percentile",
        "latency (µs)",
    );
    for (x, label) in [
        (2.0, "50%"),
        (10.0, "90%"),
        (100.0, "99%"),
        (1_000.0, "99.9%"),
        (10_000.0, "99.99%"),
        (100_000.0, "99.999%"),
    ] {
        chart.x_tick(x, label);
    }
    chart.y_ticks();
    let mut legend = Vec::new();
    for (i, (run, points)) in runs.iter().zip(&series).enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart.line(points, color, false);
        legend.push((run.label.clone(), color));
    }
    chart.legend(&legend);
    chart.write(path)
}

/// p50 and p99 (µs, log scale) against achieved throughput, per mode.
pub fn sweep_chart(path: &Path, runs: &[PlotRun<'_>]) -> Result<()> {
    let x = bounds(runs.iter().map(|r| r.throughput.max(1.0)));
    let y = bounds(runs.iter().flat_map(|r| [r.p50.max(0.01), r.p99.max(0.01)]));
    let mut chart = LogChart::new(
        "runnel latency against throughput",
        x,
        y,
        "throughput (events/s)",
        "latency (µs)",
    );
    for t in log_ticks(x.0, x.1) {
        chart.x_tick(t, &number(t));
    }
    chart.y_ticks();
    let mut modes: Vec<&str> = runs.iter().map(|r| r.mode).collect();
    modes.dedup();
    let mut legend = Vec::new();
    for (i, mode) in modes.iter().enumerate() {
        for (j, name) in ["p50", "p99"].iter().enumerate() {
            let color = COLORS[(2 * i + j) % COLORS.len()];
            let mut points: Vec<(f64, f64)> = runs
                .iter()
                .filter(|r| r.mode == *mode)
                .map(|r| {
                    (
                        r.throughput.max(1.0),
                        if j == 0 { r.p50 } else { r.p99 }.max(0.01),
                    )
                })
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart.line(&points, color, true);
            legend.push((format!("{mode} {name}"), color));
        }
    }
    chart.legend(&legend);
    chart.write(path)
}
