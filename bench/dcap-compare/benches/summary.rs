//! Prints the summary table of the last `cargo bench` run of this project as Markdown: per
//! quote, the median time per verification of each contender (from criterion's
//! `target/criterion/<group>/<function>/new/estimates.json`) and the ratios the targets are
//! stated in. A `harness = false` bench target so that it shares the bench profile's build:
//! `cargo bench --bench summary` (reads `CRITERION_DIR`, default this project's
//! `target/criterion`).

use dcap_compare::{BREAKDOWN_CASES, CASES, CONTENDERS, group_name};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Median ns per iteration of one benchmark, or `None` when it did not run.
fn median_ns(dir: &Path, group: &str, function: &str) -> Option<f64> {
    let path = dir.join(group).join(function).join("new/estimates.json");
    let text = std::fs::read(&path).ok()?;
    let v: Value = serde_json::from_slice(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn fmt_ns(ns: Option<f64>) -> String {
    match ns {
        Some(ns) => format!("{ns:.0}"),
        None => "–".into(),
    }
}

fn ratio(num: Option<f64>, den: Option<f64>) -> String {
    match (num, den) {
        (Some(n), Some(d)) if d > 0.0 => format!("{:.2}", n / d),
        _ => "–".into(),
    }
}

fn main() {
    let dir = std::env::var_os("CRITERION_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/criterion"));
    let titles: Vec<&str> = CONTENDERS.iter().map(|(_, t)| *t).collect();
    println!(
        "| quote | {} ns | warm thrpt ÷ dcap-qvl thrpt (target ≥ 20) | warm ÷ floor (target ≤ 2) | cold ÷ dcap-qvl (target ≤ 1) |",
        titles.join(" ns | ")
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (id, ..) in CASES {
        let t: Vec<Option<f64>> = CONTENDERS
            .iter()
            .map(|(f, _)| median_ns(&dir, &group_name(id), f))
            .collect();
        let (warm, cold, qvl, floor) = (t[0], t[1], t[2], t[3]);
        println!(
            "| {id} | {} | {} | {} | {} | {} | {} | {} |",
            fmt_ns(warm),
            fmt_ns(cold),
            fmt_ns(qvl),
            fmt_ns(floor),
            ratio(qvl, warm),
            ratio(warm, floor),
            ratio(cold, qvl),
        );
    }
    println!();
    println!("Breakdown (median ns; parts derived by difference):");
    println!();
    println!(
        "| quote | cold | collateral cached, PCK not | PCK cached, QE report not | warm | 1 ECDSA verify aws-lc-rs | 1 ECDSA verify ring | quote parse | → collateral part | → PCK chain part | → QE report part |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for id in BREAKDOWN_CASES {
        let g = group_name(id);
        let b = format!("breakdown_{id}");
        let cold = median_ns(&dir, &g, CONTENDERS[1].0);
        let warm = median_ns(&dir, &g, CONTENDERS[0].0);
        let coll = median_ns(&dir, &b, "collateral_cached_pck_uncached");
        let pck = median_ns(&dir, &b, "pck_cached_qe_report_uncached");
        let diff = |x: Option<f64>, y: Option<f64>| x.zip(y).map(|(x, y)| x - y);
        println!(
            "| {id} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            fmt_ns(cold),
            fmt_ns(coll),
            fmt_ns(pck),
            fmt_ns(warm),
            fmt_ns(median_ns(&dir, &b, "one_ecdsa_verify_aws_lc")),
            fmt_ns(median_ns(&dir, &b, "one_ecdsa_verify_ring")),
            fmt_ns(median_ns(&dir, &b, "quote_parse")),
            fmt_ns(diff(cold, coll)),
            fmt_ns(diff(coll, pck)),
            fmt_ns(diff(pck, warm)),
        );
    }
}
