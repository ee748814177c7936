//! `cargo bench -p codeai-dsl`: how long `codeai build` takes for the example's ten jobs.
//!
//! Prints min / p50 / p99 over many runs of the whole pipeline (parse, check, emit ten components)
//! and of its front end alone (parse + check). No framework: the figures go into BENCHMARKS.md.

use std::time::{Duration, Instant};

fn main() {
    // `cargo test --benches` runs this with `--test`-like flags; one quick run is enough there.
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    let runs = if quick { 2 } else { 50 };
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/05-scheduled-jobs/scheduled-jobs.codeai"
    );
    let source = std::fs::read_to_string(path).expect("the example exists");

    let full = measure(runs, || {
        let (artifacts, _) =
            codeai_dsl::compile("scheduled-jobs.codeai", &source).expect("the example builds");
        assert_eq!(artifacts.len(), 10);
    });
    let front = measure(runs * 10, || {
        let diagnostics = codeai_dsl::check_source(&source);
        assert!(diagnostics.iter().all(|d| !d.is_error()));
    });
    report("build 10 jobs (parse + check + emit)", &full);
    report("parse + check only", &front);
}

fn measure(runs: usize, mut f: impl FnMut()) -> Vec<Duration> {
    f(); // warm up
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort();
    samples
}

fn report(name: &str, samples: &[Duration]) {
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    println!(
        "{name:<40} runs {:>4}  min {:>9.3} ms  p50 {:>9.3} ms  p99 {:>9.3} ms",
        samples.len(),
        samples[0].as_secs_f64() * 1e3,
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
}
