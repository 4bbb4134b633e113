//! The sweep's command line and its run: data and split, calibration, every point
//! measured against dense, then the outputs.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use powerinfer::core::eval::{
    Reference, Sparsity, compare, greedy_agreement, greedy_continuations, reference,
};
use powerinfer::core::tokenizer::Tokenizer;
use powerinfer::core::{FfnPolicy, Model, corpus};
use powerinfer::predictor::PredictorSet;

use crate::data;
use crate::pass_at_1::Runner;
use crate::policies::{self, Calibration, Spec};
use crate::report::{self, Row};

/// The sweep's options.
#[derive(Parser, Debug, Clone)]
#[command(about = "Accuracy vs FFN/input sparsity, policy by policy, on text and code")]
pub struct Args {
    /// GGUF model (default: the embedded SmolLM2-135M-Instruct Q4_1).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Predictor file for the predictor policies (default: models/<model stem>.predictor;
    /// the predictor policies are skipped, with a note, when there is none).
    #[arg(long)]
    pub predictor: Option<PathBuf>,
    /// Policies, comma-separated: dense, oracle, gate, static, hotcold:H,
    /// hotcold-predictor:H, predictor, teal, wina.
    #[arg(long, value_delimiter = ',')]
    pub policies: Option<Vec<String>>,
    /// Target densities, comma-separated (default 1.0,0.7,0.5,0.3,0.2,0.1,0.05).
    #[arg(long, value_delimiter = ',')]
    pub densities: Option<Vec<f64>>,
    /// Output folder (default: results/sweep-<UTC time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A smoke run: two densities, a few chunks and problems (under 3 minutes).
    #[arg(long)]
    pub quick: bool,
    /// Plain text to score; its evaluation part (last 15% of tokens) is used.
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// Plain text to calibrate on; its calibration part (first 85%) is used (default:
    /// the --text file, so the two parts never overlap).
    #[arg(long)]
    pub calib_text: Option<PathBuf>,
    /// HumanEval-format problems (.jsonl or .jsonl.gz); the first 64 calibrate, the
    /// rest are the evaluation split.
    #[arg(long)]
    pub code: Option<PathBuf>,
    /// Text tokens per scored chunk (each chunk a fresh sequence).
    #[arg(long, default_value_t = 512)]
    pub chunk: usize,
    /// Text tokens scored.
    #[arg(long, default_value_t = 2048)]
    pub text_tokens: usize,
    /// Code problems scored, from the start of the evaluation split.
    #[arg(long, default_value_t = 40)]
    pub problems: usize,
    /// Calibration tokens: half text, half code problems (prompt + solution).
    #[arg(long, default_value_t = 2048)]
    pub calib_tokens: usize,
    /// Share of neurons counted active per token in the profile of a SwiGLU model
    /// (the ReLU family counts a ≠ 0): what "frequently active" ranks by.
    #[arg(long, default_value_t = 0.1)]
    pub active_share: f32,
    /// Prompts per set for greedy-continuation agreement.
    #[arg(long, default_value_t = 8)]
    pub greedy_prompts: usize,
    /// Greedy tokens generated per prompt.
    #[arg(long, default_value_t = 32)]
    pub greedy_tokens: usize,
    /// Also run HumanEval pass@1 (generate, then run the tests with python3).
    #[arg(long)]
    pub pass_at_1: bool,
    /// Most tokens generated per pass@1 completion.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Worker threads, 1 to 1024 (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Only redraw the plots of an earlier run from its DIR/sweep.csv (no model run).
    #[arg(long, value_name = "DIR")]
    pub plot_only: Option<PathBuf>,
}

/// Default densities.
const DENSITIES: [f64; 7] = [1.0, 0.7, 0.5, 0.3, 0.2, 0.1, 0.05];

/// What one data set is scored on.
struct Set<'a> {
    name: &'static str,
    items: Vec<(&'a [u32], usize)>,
    greedy: Vec<(Vec<u32>, usize)>,
    reference: Reference,
    dense_greedy: f64,
}

/// Runs the sweep and returns the folder the results are in.
pub fn sweep(args: &Args) -> Result<PathBuf> {
    if let Some(dir) = &args.plot_only {
        report::plots(dir, &report::read_csv(&dir.join("sweep.csv"))?)?;
        return Ok(dir.clone());
    }
    let started = Instant::now();
    let mut args = args.clone();
    if args.quick {
        args.densities.get_or_insert_with(|| vec![1.0, 0.5]);
        args.text_tokens = args.text_tokens.min(128);
        args.chunk = args.chunk.min(64);
        args.problems = args.problems.min(2);
        args.calib_tokens = args.calib_tokens.min(256);
        args.greedy_prompts = args.greedy_prompts.min(1);
        args.greedy_tokens = args.greedy_tokens.min(8);
        args.max_new_tokens = args.max_new_tokens.min(64);
    }
    let default_list = if args.quick {
        policies::QUICK
    } else {
        policies::DEFAULT
    };
    let names: Vec<String> = match &args.policies {
        Some(p) => p.clone(),
        None => default_list.split(',').map(String::from).collect(),
    };
    let mut specs = names
        .iter()
        .map(|s| Spec::parse(s.trim()))
        .collect::<Result<Vec<_>>>()?;
    let densities = args.densities.clone().unwrap_or(DENSITIES.to_vec());
    for &d in &densities {
        ensure!(d > 0.0 && d <= 1.0, "density {d} must be in (0, 1]");
    }
    let mut err = std::io::stderr().lock();

    let path = data::model_path(args.model.as_deref())?;
    let model = Model::open(&path).with_context(|| format!("loading {}", path.display()))?;
    let tokenizer = Tokenizer::from_gguf(model.gguf())?;
    let kernels = data::kernels(args.threads)?;
    let n_ff = model.config().n_ff;

    // The predictor, when one is there for this model.
    let pred_path = args
        .predictor
        .clone()
        .unwrap_or_else(|| path.with_extension("predictor"));
    let predictor = if specs.iter().any(Spec::needs_predictor) {
        if pred_path.exists() || args.predictor.is_some() {
            let set = PredictorSet::load(&pred_path)?;
            set.check_model(model.predictor_id(), &pred_path.display().to_string())?;
            Some(Arc::new(set))
        } else {
            writeln!(
                err,
                "note: no predictor at {}: skipping the predictor policies (train one with \
                 `cargo run --release --example train_predictor`)",
                pred_path.display()
            )?;
            specs.retain(|s| !s.needs_predictor());
            None
        }
    } else {
        None
    };

    // Data and split.
    let text = data::evaluation_tokens(&tokenizer, args.text.as_deref())?;
    let text = &text[..args.text_tokens.min(text.len())];
    let calib_text = data::calibration_tokens(
        &tokenizer,
        args.calib_text.as_deref().or(args.text.as_deref()),
    )?;
    let problems = data::problems(args.code.as_deref())?;
    ensure!(
        problems.len() > data::CODE_CALIBRATION_PROBLEMS,
        "{} problems: the first {} calibrate, so at least {} are needed",
        problems.len(),
        data::CODE_CALIBRATION_PROBLEMS,
        data::CODE_CALIBRATION_PROBLEMS + 1
    );
    let (calib_problems, eval_problems) = problems.split_at(data::CODE_CALIBRATION_PROBLEMS);
    let eval_problems = &eval_problems[..args.problems.min(eval_problems.len())];
    let code = data::problem_items(&tokenizer, eval_problems)?;
    let calib_code = data::problem_items(&tokenizer, calib_problems)?;

    // Calibration tokens: half text (in chunks), half whole code problems.
    let half = args.calib_tokens / 2;
    let mut calib: Vec<&[u32]> = calib_text[..half.min(calib_text.len())]
        .chunks(args.chunk.max(2))
        .collect();
    let mut code_left = args.calib_tokens - half;
    for (t, _) in &calib_code {
        if code_left == 0 {
            break;
        }
        let t = &t[..t.len().min(code_left)];
        code_left -= t.len();
        calib.push(t);
    }
    let calib_count: usize = calib.iter().map(|c| c.len()).sum();
    writeln!(
        err,
        "calibrating on {calib_count} tokens ({} text, the rest from {} code problems)…",
        half.min(calib_text.len()),
        data::CODE_CALIBRATION_PROBLEMS
    )?;
    let calibration = Calibration::collect(
        &model,
        &kernels,
        &calib,
        &specs,
        predictor.clone(),
        args.active_share,
    )?;
    let calibrated = started.elapsed();

    // The dense reference on each set.
    let text_items: Vec<(&[u32], usize)> = text.chunks(args.chunk.max(2)).map(|c| (c, 1)).collect();
    let code_items: Vec<(&[u32], usize)> = code.iter().map(|(t, f)| (t.as_slice(), *f)).collect();
    let greedy_text: Vec<&[u32]> = text
        .chunks(args.chunk.max(2))
        .take(args.greedy_prompts)
        .map(|c| &c[..c.len().min(64)])
        .collect();
    let greedy_code: Vec<&[u32]> = code
        .iter()
        .take(args.greedy_prompts)
        .map(|(t, f)| &t[..*f])
        .collect();
    writeln!(err, "dense reference…")?;
    let mut sets = Vec::new();
    for (name, items, prompts) in [
        ("text", text_items, greedy_text),
        ("code", code_items, greedy_code),
    ] {
        let greedy = greedy_continuations(&model, &kernels, &prompts, args.greedy_tokens)?;
        let dense_greedy = greedy.iter().map(|(s, f)| s.len() - f).sum::<usize>() as f64
            / greedy.len().max(1) as f64;
        sets.push(Set {
            name,
            reference: reference(&model, &kernels, &items)?,
            items,
            greedy,
            dense_greedy,
        });
    }

    // The points: dense once, then every policy at every density it applies to, and
    // the predictor at its own operating point.
    let mut points: Vec<(Spec, String, f64, Sparsity)> = Vec::new();
    if specs.contains(&Spec::Dense) {
        points.push((Spec::Dense, String::new(), 1.0, FfnPolicy::Dense.into()));
    }
    for &spec in &specs {
        for &d in densities.iter().filter(|&&d| spec.applies(d)) {
            points.push((spec, spec.param(), d, calibration.build(spec, d, n_ff)?));
        }
        if let (Spec::Predictor, Some(set)) = (spec, calibration.predictor()) {
            let reached: Vec<f64> = set
                .calibration
                .iter()
                .flatten()
                .map(|c| c.density)
                .collect();
            let target = reached.iter().sum::<f64>() / reached.len().max(1) as f64;
            let ffn = FfnPolicy::Predictor {
                set: set.clone(),
                gate_check: None,
            };
            points.push((spec, format!("{}", set.point.recall), target, ffn.into()));
        }
    }

    let runner = if args.pass_at_1 {
        let dir = std::env::temp_dir().join(format!("powerinfer-sweep-{}", std::process::id()));
        let r = Runner::new(dir, Duration::from_secs(10))?;
        // The harness itself, checked on the reference solutions first.
        let solved = r.canonical(eval_problems)?;
        writeln!(
            err,
            "pass@1 harness: the canonical solutions pass {solved}/{}",
            eval_problems.len()
        )?;
        writeln!(
            err,
            "pass@1: {}. A 135M model solves almost none of HumanEval: pass@1 is near zero \
             and a weak signal here; top-1 accuracy on the solutions is the usable proxy.",
            r.describe()
        )?;
        Some(r)
    } else {
        None
    };

    let bar = ProgressBar::new((points.len() * sets.len()) as u64).with_style(
        ProgressStyle::with_template(
            "{msg:28} {bar:30} {pos}/{len} points ({elapsed}, eta {eta})",
        )?,
    );
    let mut rows = Vec::new();
    for (spec, param, target, sparsity) in &points {
        for set in &sets {
            bar.set_message(format!("{spec} @ {target} on {}", set.name));
            let c = compare(&model, &kernels, &set.items, sparsity, &set.reference)?;
            let greedy = greedy_agreement(&model, &kernels, &set.greedy, sparsity)?;
            let pass = match (&runner, set.name) {
                (Some(r), "code") => Some((
                    r.pass_at_1(
                        &model,
                        &kernels,
                        &tokenizer,
                        eval_problems,
                        sparsity,
                        args.max_new_tokens,
                    )?,
                    eval_problems.len(),
                )),
                _ => None,
            };
            rows.push(Row {
                policy: spec.name().into(),
                param: param.clone(),
                target: *target,
                density: c.input_density.unwrap_or(c.score.density),
                set: set.name,
                tokens: c.score.tokens,
                ppl: c.score.ppl,
                dppl: c.score.ppl / set.reference.score.ppl - 1.0,
                kl: c.kl,
                agree: c.agree,
                top1: c.top1,
                bytes_per_token: c.score.ffn_bytes_per_token,
                greedy,
                pass,
            });
            if bar.is_hidden() {
                // No terminal (a log file, CI): one line per point instead of the bar.
                writeln!(
                    err,
                    "[{}/{} {:.0} s] {spec} @ {target} on {}: density {:.3}, dppl {:+.2}%",
                    bar.position() + 1,
                    bar.length().unwrap_or(0),
                    started.elapsed().as_secs_f64(),
                    set.name,
                    c.input_density.unwrap_or(c.score.density),
                    100.0 * (c.score.ppl / set.reference.score.ppl - 1.0)
                )?;
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    let out = match &args.out {
        Some(o) => o.clone(),
        None => PathBuf::from("results").join(format!("sweep-{}", utc_stamp())),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    report::write_csv(&out.join("sweep.csv"), &rows)?;
    report::write_layers(&out.join("layers.csv"), &calibration.stats)?;
    report::plots(&out, &rows)?;
    let header = header(
        &args,
        &path,
        &sets,
        calib_count,
        calibrated,
        started.elapsed(),
        runner.as_ref(),
    );
    let md = report::markdown(&header, &rows, &calibration.stats)?;
    std::fs::write(out.join("sweep.md"), &md)?;
    writeln!(err, "{md}")?;
    Ok(out)
}

/// The report's first lines: the command, model, data, split and run time.
fn header(
    args: &Args,
    model: &Path,
    sets: &[Set],
    calib: usize,
    calibrated: Duration,
    total: Duration,
    runner: Option<&Runner>,
) -> String {
    let cmd: Vec<String> = std::env::args().skip(1).collect();
    let mut s = format!(
        "# Sparsity sweep\n\n`cargo run --release --example sweep -- {}`\n\n\
         - model: {}\n- text: evaluation part (last {:.0}%) of {}, {} chunks of {} tokens\n\
         - code: problems {}.. of {} (prompt and canonical solution tokenized apart; only \
         the solution scored)\n\
         - calibration: {calib} tokens (first {:.0}% of {} and problems 0..{}), never scored\n\
         - greedy: {} text and {} code prompts, up to {} dense greedy tokens each (dense reproduces: text {:.1}, code {:.1})\n\
         - time: calibration {:.0} s, whole run {:.0} s, {} threads\n",
        cmd.join(" "),
        model.display(),
        100.0 * (1.0 - corpus::CALIBRATION_SHARE),
        args.text
            .as_ref()
            .map_or("data/botchan.txt".into(), |p| p.display().to_string()),
        sets[0].items.len(),
        args.chunk,
        data::CODE_CALIBRATION_PROBLEMS,
        args.code
            .as_ref()
            .map_or("data/HumanEval.jsonl.gz".into(), |p| p
                .display()
                .to_string()),
        100.0 * corpus::CALIBRATION_SHARE,
        args.calib_text
            .as_ref()
            .or(args.text.as_ref())
            .map_or("data/botchan.txt".into(), |p| p.display().to_string()),
        data::CODE_CALIBRATION_PROBLEMS,
        sets[0].greedy.len(),
        sets.get(1).map_or(0, |s| s.greedy.len()),
        args.greedy_tokens,
        sets[0].dense_greedy,
        sets.get(1).map_or(0.0, |s| s.dense_greedy),
        calibrated.as_secs_f64(),
        total.as_secs_f64(),
        args.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    );
    if let Some(r) = runner {
        s.push_str(&format!("- pass@1: {}\n", r.describe()));
    }
    s
}

/// `YYYYMMDD-HHMMSS` in UTC, for the default output folder.
fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
