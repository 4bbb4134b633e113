//! HumanEval pass@1: greedy completions under a policy, each run against its problem's
//! tests by `python3` in a temporary directory, one process per problem, with a
//! timeout and (where the system allows an unprivileged network namespace) no network.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use powerinfer::core::eval::Sparsity;
use powerinfer::core::sampler::argmax;
use powerinfer::core::tokenizer::Tokenizer;
use powerinfer::core::{Model, Session};
use powerinfer::kernels::Kernels;

use crate::data::Problem;

/// HumanEval's stop sequences: a completion ends where a new top-level statement
/// starts.
const STOP: [&str; 5] = ["\ndef ", "\nclass ", "\nif ", "\nprint(", "\n#"];

/// How the tests are run.
pub struct Runner {
    /// Prefix that puts the process in a fresh network namespace (`unshare -rn`), if
    /// that works here.
    isolate: bool,
    timeout: Duration,
    dir: PathBuf,
}

impl Runner {
    /// Checks for `python3` and for network isolation; `dir` holds the test files.
    pub fn new(dir: PathBuf, timeout: Duration) -> Result<Runner> {
        let ok = |cmd: &mut Command| {
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        anyhow::ensure!(
            ok(Command::new("python3").arg("-c").arg("pass")),
            "--pass-at-1 needs python3 on PATH"
        );
        let isolate = ok(Command::new("unshare").args(["-rn", "python3", "-c", "pass"]));
        std::fs::create_dir_all(&dir)?;
        Ok(Runner {
            isolate,
            timeout,
            dir,
        })
    }

    /// A line for the report on how tests ran.
    pub fn describe(&self) -> String {
        format!(
            "python3 -I, one process per problem, {} s timeout, {}",
            self.timeout.as_secs(),
            if self.isolate {
                "no network (unshare -rn)"
            } else {
                "network not isolated (unshare -rn unavailable here)"
            }
        )
    }

    /// Whether `program` exits 0 within the timeout.
    fn passes(&self, name: &str, program: &str) -> Result<bool> {
        let file = self.dir.join(format!("{name}.py"));
        std::fs::write(&file, program).with_context(|| format!("writing {}", file.display()))?;
        let mut cmd = if self.isolate {
            let mut c = Command::new("unshare");
            c.args(["-rn", "python3"]);
            c
        } else {
            Command::new("python3")
        };
        let mut child = cmd
            .arg("-I")
            .arg(&file)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting python3")?;
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status.success());
            }
            if start.elapsed() > self.timeout {
                child.kill().ok();
                child.wait().ok();
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many of `problems` their canonical solutions pass: a check of the harness
    /// (HumanEval's own solutions all pass).
    pub fn canonical(&self, problems: &[Problem]) -> Result<usize> {
        let mut passed = 0;
        for (k, p) in problems.iter().enumerate() {
            passed += usize::from(self.passes(&format!("canonical{k}"), &program(p, &p.solution))?);
        }
        Ok(passed)
    }

    /// Problems solved by greedy completions under `sparsity`, of `problems`.
    pub fn pass_at_1(
        &self,
        model: &Model,
        kernels: &Kernels,
        tokenizer: &Tokenizer,
        problems: &[Problem],
        sparsity: &Sparsity,
        max_new: usize,
    ) -> Result<usize> {
        let mut passed = 0;
        for (k, p) in problems.iter().enumerate() {
            let completion = complete(model, kernels, tokenizer, &p.prompt, sparsity, max_new)?;
            passed += usize::from(self.passes(&format!("problem{k}"), &program(p, &completion))?);
        }
        Ok(passed)
    }
}

/// The test program of `p` with `completion` after its prompt.
fn program(p: &Problem, completion: &str) -> String {
    format!(
        "{}{}\n\n{}\n\ncheck({})\n",
        p.prompt, completion, p.test, p.entry_point
    )
}

/// The greedy completion of `prompt`, cut at the first stop sequence.
fn complete(
    model: &Model,
    kernels: &Kernels,
    tokenizer: &Tokenizer,
    prompt: &str,
    sparsity: &Sparsity,
    max_new: usize,
) -> Result<String> {
    let ids = tokenizer.encode(prompt, false)?;
    let mut session = Session::new(model, kernels.clone(), ids.len() + max_new)?;
    session.set_input_sparsity(sparsity.input.clone());
    let mut logits = session.forward(&ids, &sparsity.ffn)?;
    let mut out = Vec::new();
    for _ in 0..max_new {
        let next = argmax(&logits);
        if Some(next) == tokenizer.eos_id() {
            break;
        }
        out.push(next);
        let text = tokenizer.decode(&out)?;
        if let Some(cut) = STOP.iter().filter_map(|s| text.find(s)).min() {
            return Ok(text[..cut].to_string());
        }
        if session.pos() >= session.ctx_len() {
            break;
        }
        logits = session.forward(&[next], &sparsity.ffn)?;
    }
    Ok(tokenizer.decode(&out)?)
}
