//! `cargo xtask bench`: the harness runs every case, and the alias hands it its arguments.

use crate::sandbox;

#[test]
fn the_benchmark_harness_runs_every_case_in_quick_mode() {
    // Promise: `cargo xtask bench` cannot rot unnoticed.
    let sb = sandbox();
    let out = sb.dir.join("BENCHMARKS.md");
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let bench = std::path::Path::new(env!("CARGO_BIN_EXE_bench"));
    let args = ["--tool", env!("CARGO_BIN_EXE_xtask-under-test"), "--quick", "--out", out.to_str().unwrap()];
    let run = tests::run_tool(bench, &args.map(String::from), workspace, &[]);
    run.expect(0);
    let table = std::fs::read_to_string(&out).unwrap();
    for case in [
        "1. cold fetch",
        "2. peak memory",
        "3. full verify",
        "4. re-verify",
        "5. resume",
        "6. ",
        "7. start-up",
        "8. install",
    ] {
        assert!(table.contains(&format!("| {case}")), "{case} missing:\n{table}");
    }
    assert!(table.contains("| 10. one 40.0 MiB file, each connection capped"), "{table}");
    let https = table.contains("| 9. fetch of one") || table.contains("nginx is not installed");
    assert!(https, "the https case ran or said why not:\n{table}");
    assert_eq!(run.stdout.trim(), table.trim());
}

#[test]
fn cargo_xtask_bench_hands_its_arguments_and_its_own_binary_to_the_bench_program() {
    // Promise: `cargo xtask bench --quick` still runs the benchmark, which now lives in
    // the tests package: the tool asks cargo (here a stand-in that records) to run it.
    let mut sb = sandbox();
    let record = sb.dir.join("cargo-args");
    let fake = sb.dir.join("fake-cargo");
    std::fs::write(&fake, format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n", record.display())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    sb.set_env("CARGO", fake.to_str().unwrap());
    sb.run_raw(&["bench".into(), "--quick".into(), "--runs".into(), "2".into()]).expect(0);
    let args = std::fs::read_to_string(&record).unwrap();
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(&args[..7], ["run", "--quiet", "--package", "tests", "--bin", "bench", "--"], "{args:?}");
    assert_eq!(args[7], "--tool");
    assert_eq!(args[8], env!("CARGO_BIN_EXE_xtask-under-test"));
    assert_eq!(&args[9..], ["--quick", "--runs", "2"]);
}
