//! The sweep's outputs: `sweep.csv` (the fixed columns), `layers.csv`, a markdown
//! report and the plots.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use powerinfer::predictor::{ActivationStats, TOP_SHARES};

use crate::plot::{Panel, Series, line_plot};

/// One measured point: a policy at a density on one data set.
#[derive(Clone, Debug)]
pub struct Row {
    /// Policy name (`dense`, `oracle`, …).
    pub policy: String,
    /// h for hot+cold, the recall target for the predictor's own operating point, else
    /// empty.
    pub param: String,
    /// The density asked for.
    pub target: f64,
    /// The density reached (FFN neurons; projection input entries for teal/wina).
    pub density: f64,
    /// `text` or `code`.
    pub set: &'static str,
    /// Positions scored.
    pub tokens: usize,
    /// Perplexity.
    pub ppl: f64,
    /// ppl / ppl_dense − 1.
    pub dppl: f64,
    /// Mean KL(dense ‖ policy).
    pub kl: f64,
    /// Top-1 agreement with dense.
    pub agree: f64,
    /// Teacher-forced top-1 accuracy.
    pub top1: f64,
    /// FFN weight bytes read per token.
    pub bytes_per_token: f64,
    /// Mean greedy tokens before the first divergence from dense.
    pub greedy: f64,
    /// HumanEval pass@1 (code rows, with `--pass-at-1`): (passed, problems).
    pub pass: Option<(usize, usize)>,
}

impl Row {
    /// The predictor at the operating point its file was calibrated for.
    fn own_point(&self) -> bool {
        !self.param.is_empty() && !self.policy.starts_with("hotcold")
    }

    fn label(&self) -> String {
        if self.policy.starts_with("hotcold") {
            format!("{} h={}", self.policy, self.param)
        } else if self.own_point() {
            format!("{} (own point)", self.policy)
        } else {
            self.policy.clone()
        }
    }
}

/// The header of `sweep.csv`.
pub const CSV_HEADER: &str =
    "policy,param,target_density,density,set,tokens,ppl,dppl,kl,agree,top1,bytes_per_token";

/// Writes `sweep.csv` (floats in full precision: a reader can check that dense
/// against itself gives KL 0 and agreement 1 exactly).
pub fn write_csv(path: &Path, rows: &[Row]) -> Result<()> {
    let mut s = format!("{CSV_HEADER}\n");
    for r in rows {
        writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{:.0}",
            r.policy,
            r.param,
            r.target,
            r.density,
            r.set,
            r.tokens,
            r.ppl,
            r.dppl,
            r.kl,
            r.agree,
            r.top1,
            r.bytes_per_token
        )?;
    }
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
}

/// Reads back the rows of a `sweep.csv` (greedy agreement and pass@1 are not in it).
pub fn read_csv(path: &Path) -> Result<Vec<Row>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    anyhow::ensure!(
        lines.next() == Some(CSV_HEADER),
        "{}: not a sweep.csv (header differs)",
        path.display()
    );
    lines
        .enumerate()
        .map(|(k, line)| {
            let f: Vec<&str> = line.split(',').collect();
            anyhow::ensure!(
                f.len() == 12,
                "{}: line {}: {} fields",
                path.display(),
                k + 2,
                f.len()
            );
            let num = |i: usize| -> Result<f64> {
                f[i].parse()
                    .with_context(|| format!("{}: line {}: field {}", path.display(), k + 2, i + 1))
            };
            Ok(Row {
                policy: f[0].to_string(),
                param: f[1].to_string(),
                target: num(2)?,
                density: num(3)?,
                set: if f[4] == "code" { "code" } else { "text" },
                tokens: num(5)? as usize,
                ppl: num(6)?,
                dppl: num(7)?,
                kl: num(8)?,
                agree: num(9)?,
                top1: num(10)?,
                bytes_per_token: num(11)?,
                greedy: f64::NAN,
                pass: None,
            })
        })
        .collect()
}

/// Writes `layers.csv`: per layer, the share of activation events and of mass held
/// by the hottest 10% and 20% of neurons.
pub fn write_layers(path: &Path, stats: &ActivationStats) -> Result<()> {
    let (i10, i20) = (share_index(0.10), share_index(0.20));
    let mut s = "layer,mean_density,events_top10,events_top20,mass_top10,mass_top20\n".to_string();
    for l in 0..stats.layers() {
        let m = stats.summary(l);
        writeln!(
            s,
            "{l},{:.4},{:.4},{:.4},{:.4},{:.4}",
            m.mean_density,
            m.event_share[i10],
            m.event_share[i20],
            m.mass_share[i10],
            m.mass_share[i20]
        )?;
    }
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
}

fn share_index(share: f64) -> usize {
    TOP_SHARES
        .iter()
        .position(|&s| (s - share).abs() < 1e-9)
        .unwrap_or(0)
}

/// The markdown report: the run, the table, the per-layer profile.
pub fn markdown(header: &str, rows: &[Row], stats: &ActivationStats) -> Result<String> {
    let mut s = format!("{header}\n\n");
    let pass = rows.iter().any(|r| r.pass.is_some());
    s.push_str(
        "| policy | param | target | density | set | tokens | ppl | dppl | KL | agree | top-1 | greedy | FFN MB/token |",
    );
    s.push_str(if pass { " pass@1 |\n" } else { "\n" });
    s.push_str("|---|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    s.push_str(if pass { "--:|\n" } else { "\n" });
    for r in rows {
        write!(
            s,
            "| {} | {} | {:.2} | {:.3} | {} | {} | {:.3} | {:+.2}% | {:.4} | {:.3} | {:.3} | {:.1} | {:.2} |",
            r.policy,
            r.param,
            r.target,
            r.density,
            r.set,
            r.tokens,
            r.ppl,
            100.0 * r.dppl,
            r.kl,
            r.agree,
            r.top1,
            r.greedy,
            r.bytes_per_token / 1e6
        )?;
        match (pass, r.pass) {
            (true, Some((p, n))) => writeln!(s, " {p}/{n} |")?,
            (true, None) => writeln!(s, " |")?,
            _ => writeln!(s)?,
        }
    }
    pivot(&mut s, rows, "dppl", |r| format!("{:+.1}%", 100.0 * r.dppl))?;
    pivot(&mut s, rows, "top-1 accuracy", |r| format!("{:.3}", r.top1))?;
    let (i10, i20) = (share_index(0.10), share_index(0.20));
    writeln!(
        s,
        "\nPer layer, share of active events ({}) and of activation mass Σ|a| held by the \
         hottest 10% / 20% of neurons (a power law would put most of both in the top 10%):\n",
        stats.rule()
    )?;
    s.push_str("| layer | mean density | events top 10% | events top 20% | mass top 10% | mass top 20% |\n|--:|--:|--:|--:|--:|--:|\n");
    for l in 0..stats.layers() {
        let m = stats.summary(l);
        writeln!(
            s,
            "| {l} | {:.3} | {:.1}% | {:.1}% | {:.1}% | {:.1}% |",
            m.mean_density,
            100.0 * m.event_share[i10],
            100.0 * m.event_share[i20],
            100.0 * m.mass_share[i10],
            100.0 * m.mass_share[i20]
        )?;
    }
    Ok(s)
}

/// The distinct line labels of `rows`, in first-seen order.
fn labels<'a>(rows: impl IntoIterator<Item = &'a Row>) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for r in rows {
        if !labels.contains(&r.label()) {
            labels.push(r.label());
        }
    }
    labels
}

/// One table per set: `cell` of each policy (row) at each target density (column).
fn pivot(s: &mut String, rows: &[Row], what: &str, cell: fn(&Row) -> String) -> Result<()> {
    // The predictor's own operating point has its own density: the main table has it.
    let rows: Vec<&Row> = rows.iter().filter(|r| !r.own_point()).collect();
    let mut targets: Vec<f64> = rows.iter().map(|r| r.target).collect();
    targets.sort_by(|a, b| b.total_cmp(a));
    targets.dedup();
    let labels = labels(rows.iter().copied());
    for set in ["text", "code"] {
        writeln!(s, "\n{what} on {set}, by target density:\n")?;
        s.push_str("| policy |");
        targets.iter().try_for_each(|t| write!(s, " {t} |"))?;
        s.push_str("\n|---|");
        s.push_str(&"--:|".repeat(targets.len()));
        s.push('\n');
        for label in &labels {
            write!(s, "| {label} |")?;
            for &t in &targets {
                let c = rows
                    .iter()
                    .find(|r| r.set == set && r.label() == *label && r.target == t)
                    .map_or(String::new(), |r| cell(r));
                write!(s, " {c} |")?;
            }
            s.push('\n');
        }
    }
    Ok(())
}

/// `dppl.png`, `kl.png`, `top1.png` in `dir`: the metric against density, one line
/// per policy, text and code side by side.
pub fn plots(dir: &Path, rows: &[Row]) -> Result<()> {
    type Metric = fn(&Row) -> f64;
    let metrics: [(&str, &str, bool, Metric); 3] = [
        // The ratio on a log axis: one bad policy would flatten the rest on a linear one.
        ("dppl", "ppl / ppl dense (= 1 + dppl)", true, |r| {
            1.0 + r.dppl
        }),
        ("kl", "KL(dense ‖ policy), nats", true, |r| r.kl),
        ("top1", "top-1 accuracy", false, |r| r.top1),
    ];
    let labels = labels(rows);
    for (file, y_label, log_y, metric) in metrics {
        let panels: Vec<Panel> = ["text", "code"]
            .iter()
            .map(|set| Panel {
                title: format!("{file} on {set}"),
                x_label: "density reached".into(),
                y_label: y_label.into(),
                log_x: true,
                log_y,
                series: labels
                    .iter()
                    .map(|label| {
                        let mut points: Vec<(f64, f64)> = rows
                            .iter()
                            .filter(|r| r.set == *set && r.label() == *label)
                            .map(|r| (r.density, metric(r)))
                            .collect();
                        points.sort_by(|a, b| a.0.total_cmp(&b.0));
                        Series {
                            label: label.clone(),
                            points,
                        }
                    })
                    .filter(|s| !s.points.is_empty())
                    .collect(),
            })
            .filter(|p| {
                // A log axis needs a positive point (dense alone has KL = 0).
                p.series
                    .iter()
                    .flat_map(|s| &s.points)
                    .any(|&(_, y)| y.is_finite() && (!log_y || y > 0.0))
            })
            .collect();
        if panels.is_empty() {
            continue;
        }
        let width = 900 * panels.len() as u32;
        line_plot(&dir.join(format!("{file}.png")), &panels, width, 650)?;
    }
    Ok(())
}
