//! Smoke test of `cargo run --release --example sweep -- --quick` on the real default
//! model: the example's own code, run in-process. Checks the measuring machinery, not
//! the results: the files are there, every number is finite, and dense measured
//! against itself gives KL 0 and top-1 agreement 1 exactly.

#[path = "../examples/common/data.rs"]
mod data;
#[path = "../examples/sweep/pass_at_1.rs"]
mod pass_at_1;
#[path = "../examples/common/plot.rs"]
mod plot;
#[path = "../examples/sweep/policies.rs"]
mod policies;
#[path = "../examples/sweep/report.rs"]
mod report;
#[path = "../examples/sweep/run.rs"]
mod run;

use clap::Parser;

#[test]
fn quick_sweep_writes_finite_results_and_dense_matches_itself_exactly() {
    let out = std::env::temp_dir().join(format!("powerinfer-sweep-quick-{}", std::process::id()));
    let args = run::Args::parse_from(["sweep", "--quick", "--out", out.to_str().unwrap()]);
    let dir = run::sweep(&args).unwrap();
    assert_eq!(dir, out);
    for f in [
        "sweep.csv",
        "sweep.md",
        "layers.csv",
        "dppl.png",
        "kl.png",
        "top1.png",
    ] {
        let meta = std::fs::metadata(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(meta.len() > 0, "{f} is empty");
    }
    let csv = std::fs::read_to_string(dir.join("sweep.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(report::CSV_HEADER));
    let mut policies = std::collections::BTreeSet::new();
    let mut dense_rows = 0;
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 12, "{line}");
        // Every numeric column parses and is finite.
        let num = |i: usize| -> f64 {
            let v: f64 = f[i]
                .parse()
                .unwrap_or_else(|e| panic!("{line}: column {i}: {e}"));
            assert!(v.is_finite(), "{line}: column {i}");
            v
        };
        for i in [2, 3, 5, 6, 7, 8, 9, 10, 11] {
            num(i);
        }
        assert!(f[4] == "text" || f[4] == "code", "{line}");
        policies.insert(f[0].to_string());
        if f[0] == "dense" {
            dense_rows += 1;
            assert_eq!(num(8), 0.0, "dense KL: {line}");
            assert_eq!(num(9), 1.0, "dense agreement: {line}");
            assert_eq!(num(7), 0.0, "dense dppl: {line}");
        }
    }
    assert_eq!(dense_rows, 2, "one dense row per set");
    for p in ["oracle", "gate", "static", "hotcold", "teal", "wina"] {
        assert!(policies.contains(p), "no {p} rows in {csv}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
