//! The results of every run, and the Markdown they are published as: figures, ratios to the
//! baselines, damselfly's targets.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::measure::StepOutput;
use crate::{Engine, Options, Workload};

/// One figure of one workload, per engine: `(run, value)` of every run.
#[derive(Debug)]
struct Row {
    workload: Workload,
    metric: String,
    values: BTreeMap<Engine, Vec<(usize, f64)>>,
}

/// Every figure of every run, in the order first measured.
#[derive(Debug, Default)]
pub struct Results {
    rows: Vec<Row>,
}

/// A figure: which engine, workload and metric.
type Figure = (Engine, Workload, &'static str);

/// One of damselfly's targets (issue 5): a figure over a reference figure, or a figure alone.
struct Target {
    what: &'static str,
    workload: Workload,
    metric: &'static str,
    /// The reference, `None` for the same engine.
    over: Option<(Option<Engine>, Workload, &'static str)>,
    /// The bound: at least this ratio (with `over`), or at most this value (without).
    bound: f64,
}

const MEMTABLE_BUDGET_PLUS_64_MIB: f64 = 3.0 * 64.0 + 64.0;

const TARGETS: [Target; 13] = [
    ratio(
        "ingest ≥ 20 × tonbo",
        Workload::Ingest1k,
        Some(Engine::Tonbo),
        20.0,
    ),
    ratio(
        "ingest ≥ 20 × tonbo",
        Workload::Ingest8k,
        Some(Engine::Tonbo),
        20.0,
    ),
    ratio(
        "ingest ≥ 3 × slatedb",
        Workload::Ingest1k,
        Some(Engine::Slatedb),
        3.0,
    ),
    ratio(
        "ingest ≥ 3 × slatedb",
        Workload::Ingest8k,
        Some(Engine::Slatedb),
        3.0,
    ),
    ratio(
        "ingest with flush ≥ 70% of arrow-rs writing",
        Workload::Ingest1k,
        Some(Engine::ArrowRs),
        0.7,
    ),
    ratio(
        "ingest with flush ≥ 70% of arrow-rs writing",
        Workload::Ingest8k,
        Some(Engine::ArrowRs),
        0.7,
    ),
    Target {
        what: "one committer ≥ 70% of append+fdatasync",
        workload: Workload::Commit1,
        metric: "commits/s",
        over: Some((Some(Engine::AppendFsync), Workload::Commit1, "commits/s")),
        bound: 0.7,
    },
    Target {
        what: "64 committers ≥ 10 × append+fdatasync",
        workload: Workload::Commit64,
        metric: "commits/s",
        over: Some((Some(Engine::AppendFsync), Workload::Commit1, "commits/s")),
        bound: 10.0,
    },
    Target {
        what: "64 committers ≥ 10 × one committer",
        workload: Workload::Commit64,
        metric: "commits/s",
        over: Some((None, Workload::Commit1, "commits/s")),
        bound: 10.0,
    },
    Target {
        what: "full scan ≥ 80% of arrow-rs reading the same SSTs",
        workload: Workload::Scan,
        metric: "scan rows/s",
        over: Some((None, Workload::Scan, "scan, arrow-rs on its SSTs rows/s")),
        bound: 0.8,
    },
    Target {
        what: "point lookup p50 < 50 µs",
        workload: Workload::Get,
        metric: "gets p50 µs",
        over: None,
        bound: 50.0,
    },
    Target {
        what: "peak RSS ≤ memtable budget (192 MiB) + 64 MiB",
        workload: Workload::Ingest1k,
        metric: "peak RSS MiB",
        over: None,
        bound: MEMTABLE_BUDGET_PLUS_64_MIB,
    },
    Target {
        what: "peak RSS ≤ memtable budget (192 MiB) + 64 MiB",
        workload: Workload::Ingest8k,
        metric: "peak RSS MiB",
        over: None,
        bound: MEMTABLE_BUDGET_PLUS_64_MIB,
    },
];

/// An ingest rate over another engine's.
const fn ratio(what: &'static str, workload: Workload, over: Option<Engine>, bound: f64) -> Target {
    Target {
        what,
        workload,
        metric: "rows/s",
        over: Some((over, workload, "rows/s")),
        bound,
    }
}

/// The baselines' figures the ratio table divides by.
const BASELINES: [(Workload, &str, Figure); 6] = [
    (
        Workload::Ingest1k,
        "rows/s",
        (Engine::ArrowRs, Workload::Ingest1k, "rows/s"),
    ),
    (
        Workload::Ingest8k,
        "rows/s",
        (Engine::ArrowRs, Workload::Ingest8k, "rows/s"),
    ),
    (
        Workload::Commit1,
        "commits/s",
        (Engine::AppendFsync, Workload::Commit1, "commits/s"),
    ),
    (
        Workload::Commit64,
        "commits/s",
        (Engine::AppendFsync, Workload::Commit1, "commits/s"),
    ),
    (
        Workload::Scan,
        "scan rows/s",
        (Engine::ArrowRs, Workload::Scan, "scan rows/s"),
    ),
    (
        Workload::Scan,
        "projection rows/s",
        (Engine::ArrowRs, Workload::Scan, "projection rows/s"),
    ),
];

impl Results {
    pub fn record(&mut self, run: usize, workload: Workload, engine: Engine, output: StepOutput) {
        let rss = ("peak RSS MiB".to_owned(), output.peak_rss_mib);
        let metrics = output
            .metrics
            .into_iter()
            .map(|metric| (metric.name, metric.value));
        for (metric, value) in metrics.chain([rss]) {
            let index = match self
                .rows
                .iter()
                .position(|row| row.workload == workload && row.metric == metric)
            {
                Some(index) => index,
                None => {
                    self.rows.push(Row {
                        workload,
                        metric,
                        values: BTreeMap::new(),
                    });
                    self.rows.len() - 1
                }
            };
            self.rows[index]
                .values
                .entry(engine)
                .or_default()
                .push((run, value));
        }
    }

    fn values(&self, (engine, workload, metric): Figure) -> &[(usize, f64)] {
        self.rows
            .iter()
            .find(|row| row.workload == workload && row.metric == metric)
            .and_then(|row| row.values.get(&engine))
            .map_or(&[], Vec::as_slice)
    }

    /// The median over the runs of `figure / over`, each ratio taken within one run.
    fn ratio(&self, figure: Figure, over: Figure) -> Option<f64> {
        let references = self.values(over);
        let ratios: Vec<f64> = self
            .values(figure)
            .iter()
            .filter_map(|&(run, value)| {
                let reference = references.iter().find(|(other, _)| *other == run)?.1;
                Some(value / reference)
            })
            .collect();
        median(ratios)
    }

    pub fn markdown(&self, options: &Options) -> String {
        let engines: Vec<Engine> = Engine::ALL
            .into_iter()
            .filter(|engine| options.engines.contains(engine))
            .collect();
        let mut out = String::new();
        let params = &options.params;
        let _ = writeln!(
            out,
            "{} runs; {} rows, {} commits of {} rows, {} lookups, {} rows before the crash; \
             {} cores. Median (min–max) of the runs.\n",
            options.runs,
            params.rows,
            params.commits,
            crate::COMMIT_ROWS,
            params.lookups,
            params.recovery_rows,
            std::thread::available_parallelism().map_or(1, usize::from),
        );
        let heading: Vec<&str> = engines.iter().map(|engine| title(*engine)).collect();
        let _ = writeln!(out, "| workload | figure | {} |", heading.join(" | "));
        let _ = writeln!(out, "|---|---|{}", "---|".repeat(engines.len()));
        for row in &self.rows {
            let cells: Vec<String> = engines
                .iter()
                .map(|engine| {
                    row.values
                        .get(engine)
                        .map_or("".to_owned(), |values| spread(values))
                })
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                row.workload.name(),
                row.metric,
                cells.join(" | ")
            );
        }

        let measured: Vec<Engine> = engines
            .iter()
            .copied()
            .filter(|engine| !matches!(engine, Engine::ArrowRs | Engine::AppendFsync))
            .collect();
        let heading: Vec<&str> = measured.iter().map(|engine| title(*engine)).collect();
        let _ = writeln!(
            out,
            "\nRatios to the baselines (the median of the ratios within each run):\n\n\
             | workload | figure | over | {} |\n|---|---|---|{}",
            heading.join(" | "),
            "---|".repeat(measured.len())
        );
        for (workload, metric, over) in BASELINES {
            let cells: Vec<String> = measured
                .iter()
                .map(|&engine| {
                    self.ratio((engine, workload, metric), over)
                        .map_or("".to_owned(), |ratio| format!("{ratio:.2}"))
                })
                .collect();
            let _ = writeln!(
                out,
                "| {} | {metric} | {} {} | {} |",
                workload.name(),
                title(over.0),
                over.1.name(),
                cells.join(" | ")
            );
        }

        let damselfly: Vec<Engine> = [Engine::DamselflyTokio, Engine::DamselflySmol]
            .into_iter()
            .filter(|engine| engines.contains(engine))
            .collect();
        let heading: Vec<&str> = damselfly.iter().map(|engine| title(*engine)).collect();
        let _ = writeln!(
            out,
            "\ndamselfly's targets:\n\n| target | workload | {} |\n|---|---|{}",
            heading.join(" | "),
            "---|".repeat(damselfly.len())
        );
        for target in &TARGETS {
            let cells: Vec<String> = damselfly
                .iter()
                .map(|&engine| {
                    let figure = (engine, target.workload, target.metric);
                    match target.over {
                        Some((over, workload, metric)) => self
                            .ratio(figure, (over.unwrap_or(engine), workload, metric))
                            .map_or("".to_owned(), |ratio| {
                                format!("{ratio:.2} {}", mark(ratio >= target.bound))
                            }),
                        None => median(
                            self.values(figure)
                                .iter()
                                .map(|(_, value)| *value)
                                .collect(),
                        )
                        .map_or("".to_owned(), |value| {
                            format!("{} {}", number(value), mark(value <= target.bound))
                        }),
                    }
                })
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                target.what,
                target.workload.name(),
                cells.join(" | ")
            );
        }
        out
    }
}

fn title(engine: Engine) -> &'static str {
    match engine {
        Engine::DamselflyTokio => "damselfly (tokio)",
        Engine::DamselflySmol => "damselfly (smol)",
        Engine::Tonbo => "tonbo 0.4",
        Engine::Slatedb => "slatedb 0.18",
        Engine::ArrowRs => "arrow-rs",
        Engine::AppendFsync => "append+fdatasync",
    }
}

fn mark(met: bool) -> &'static str {
    if met { "✓" } else { "✗" }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    })
}

/// `median (min–max)`, or the one value of a single run.
fn spread(values: &[(usize, f64)]) -> String {
    let values: Vec<f64> = values.iter().map(|(_, value)| *value).collect();
    let (min, max) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(min, max), &value| {
            (min.min(value), max.max(value))
        });
    let middle = median(values.clone()).expect("at least one run");
    if values.len() == 1 {
        number(middle)
    } else {
        format!("{} ({}–{})", number(middle), number(min), number(max))
    }
}

/// Millions and thousands shortened, small values with their decimals.
fn number(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if value >= 1e4 {
        format!("{:.0}k", value / 1e3)
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}
