//! `cargo xtask bench`: the figures behind every speed and memory claim, reproducible.
//!
//! It makes its own data, serves it from the test suite's loopback server (files are
//! sent with sendfile, so the server is never the bottleneck) and, where nginx is
//! installed, over https from nginx with a private CA; it runs each case several times
//! after a warm-up and prints medians with min–max. Ratios are taken pair by pair within
//! the same round, because these machines are shared and noisy: absolute seconds drift,
//! a pair measured back to back mostly does not. Baselines (curl, sha256sum, openssl)
//! run through xshell and are skipped, with a note, where the program is missing. The
//! table is printed and written to BENCHMARKS.md; `--quick` runs tiny sizes so a test
//! can keep the harness from rotting.
//!
//! It lives in the tests package, not in the tool: `cargo xtask` never compiles it, and
//! it shares the tests' server, payload generator and nginx harness.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use camino::{Utf8Path, Utf8PathBuf};
use clap::Parser;
use sha2::{Digest, Sha256};
use tests::daemons::{Nginx, NginxConfig, Seaweed, find_weed};
use tests::tls::Pki;
use tests::{Payload, Reply, Server, pieces_done};
use xshell::{Shell, cmd};

const MIB: u64 = 1 << 20;

/// Measure `models fetch` and `verify` against curl, sha256sum and openssl.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask bench")]
struct Options {
    /// The tool to measure (`cargo xtask bench` passes its own binary).
    #[arg(long, value_name = "PATH")]
    tool: std::path::PathBuf,
    /// Tiny sizes and one round: checks that the harness works, in seconds.
    #[arg(long)]
    quick: bool,
    /// Measured rounds per case (after one warm-up).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Where the table goes [default: BENCHMARKS.md in the current folder].
    #[arg(long, value_name = "FILE", default_value = "BENCHMARKS.md")]
    out: Utf8PathBuf,
    /// Run only these cases (repeatable): cold (1, 2), https (9), verify (3, 4, 8),
    /// resume (5), many (6), startup (7), capped (10), s3 (11), defaults (12).
    #[arg(long, value_name = "CASE")]
    only: Vec<String>,
}

/// Sizes for one bench run: the real ones, or tiny ones for `--quick`.
struct Sizes {
    big: u64,
    /// The file of the capped-connections case.
    capped: u64,
    small_rss: u64,
    verify_scale: u64,
    many_files: usize,
    many_size: u64,
    latency: Duration,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                big: 8 * MIB,
                capped: 40 * MIB,
                small_rss: 2 * MIB,
                verify_scale: 1024,
                many_files: 6,
                many_size: 64 << 10,
                latency: Duration::from_millis(20),
            }
        } else {
            Sizes {
                big: 1 << 30,
                capped: 256 * MIB,
                small_rss: 64 * MIB,
                verify_scale: 1,
                many_files: 50,
                many_size: MIB,
                latency: Duration::from_millis(50),
            }
        }
    }
}

/// Everything the cases share: the scratch folder, the server, the tool, the sizes.
struct Bench {
    work: Workdir,
    server: Server,
    tool: Tool,
    sh: Shell,
    sizes: Sizes,
    runs: usize,
    warmup: bool,
    report: Report,
}

fn main() -> ExitCode {
    let options = Options::parse();
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> anyhow::Result<()> {
    let mut bench = Bench {
        work: Workdir::new()?,
        server: Server::start(),
        tool: Tool { exe: options.tool.clone() },
        sh: Shell::new()?,
        sizes: Sizes::new(options.quick),
        // --quick checks that the harness works: one round, no warm-up.
        runs: if options.quick { 1 } else { options.runs.max(1) },
        warmup: !options.quick,
        report: Report::default(),
    };
    let wanted = |case: &str| options.only.is_empty() || options.only.iter().any(|o| o == case);
    if wanted("cold") {
        bench.cold_fetch()?;
    }
    if wanted("https") {
        bench.https_fetch()?;
    }
    if wanted("verify") {
        bench.full_verify()?;
    }
    if wanted("resume") {
        bench.resume()?;
    }
    if wanted("many") {
        bench.many_files()?;
    }
    if wanted("capped") {
        bench.capped()?;
    }
    if wanted("startup") {
        bench.startup()?;
    }
    if wanted("s3") {
        bench.s3()?;
    }
    if wanted("defaults") {
        bench.defaults()?;
    }
    let table = bench.report.render(options.quick, &bench.sh);
    println!("{table}");
    std::fs::write(&options.out, table.as_bytes()).with_context(|| format!("writing {}", options.out))?;
    eprintln!("wrote {}", options.out);
    Ok(())
}

impl Bench {
    /// Case 1 and 2: one big file, the tool against curl, and peak memory.
    fn cold_fetch(&mut self) -> anyhow::Result<()> {
        let Bench { work, server, tool, sh, sizes, runs, warmup, report } = self;
        let (runs, warmup) = (*runs, *warmup);
        let section = format!("1. cold fetch of one {} file", human_bytes(sizes.big));
        let big = work.add_file(server, "big.bin", sizes.big, 1)?;
        let manifest = work.manifest("big", &[(&big, "big.bin")])?;
        let url = server.url("/big.bin");
        let have_curl = has_program(sh, "curl");
        let have_sha256sum = has_program(sh, "sha256sum");
        let (mut fetch, mut curl, mut curl_sha, mut rss) = (Vec::new(), Vec::new(), Vec::new(), 0u64);
        for round in 0..runs + usize::from(warmup) {
            let keep = !(warmup && round == 0);
            let dir = work.fresh("ck");
            let out = tool.run(&models_args("fetch", &manifest, &dir, &["--no-cache"]))?;
            if keep {
                fetch.push(out.seconds);
                rss = rss.max(out.peak_rss);
            }
            if have_curl {
                let target = work.fresh_file("curl.bin");
                let t = time(|| cmd!(sh, "curl -sS -o {target} {url}").quiet().run())?;
                if keep {
                    curl.push(t);
                }
                if have_sha256sum {
                    let target = work.fresh_file("curl.bin");
                    let t = time(|| {
                        cmd!(sh, "curl -sS -o {target} {url}").quiet().run()?;
                        cmd!(sh, "sha256sum {target}").quiet().ignore_stdout().run()
                    })?;
                    if keep {
                        curl_sha.push(t);
                    }
                }
            }
        }
        report.row(
            &section,
            "models fetch (download + sha256 + fsync + rename)",
            Stat::seconds(&fetch),
            "",
            "",
        );
        if have_curl {
            report.row(&section, "curl -o", Stat::seconds(&curl), "", "");
            let ratio = pairwise(&fetch, &curl, |a, b| a / b);
            report.goal(&section, "fetch ÷ curl -o, pair by pair", ratio, "≤ 1.15×", |x| x <= 1.15);
        } else {
            report.note("curl is not installed: the curl baselines were skipped");
        }
        if have_curl && have_sha256sum {
            report.row(&section, "curl -o then sha256sum", Stat::seconds(&curl_sha), "", "");
            let ratio = pairwise(&curl_sha, &fetch, |a, b| a / b);
            report.goal(&section, "(curl + sha256sum) ÷ fetch", ratio, "≥ 2×", |x| x >= 2.0);
        }

        let section2 = "2. peak memory of the fetch (max RSS of the process)".to_owned();
        report.row(
            &section2,
            &format!("fetch of {}", human_bytes(sizes.big)),
            Stat::mib(rss),
            "≤ 16 MiB",
            verdict(rss <= 16 * MIB),
        );
        let small = work.add_file(server, "small.bin", sizes.small_rss, 2)?;
        let manifest = work.manifest("small", &[(&small, "small.bin")])?;
        let dir = work.fresh("ck");
        let out = tool.run(&models_args("fetch", &manifest, &dir, &["--no-cache"]))?;
        let flat = out.peak_rss <= rss + 4 * MIB && rss <= out.peak_rss + 4 * MIB;
        report.row(
            &section2,
            &format!("fetch of {}", human_bytes(sizes.small_rss)),
            Stat::mib(out.peak_rss),
            "flat in file size",
            verdict(flat),
        );
        work.remove_file("big.bin");
        work.remove_file("small.bin");
        Ok(())
    }

    /// Case 9: the big file over https from nginx with a private CA, against the same over
    /// http from nginx and against curl over https: what TLS costs, and what the rustls and
    /// ring `opt-level = 3` overrides in the workspace Cargo.toml buy.
    fn https_fetch(&mut self) -> anyhow::Result<()> {
        let Bench { work, server, tool, sh, sizes, runs, warmup, report } = self;
        let (runs, warmup) = (*runs, *warmup);
        let section =
            format!("9. fetch of one {} file from nginx, https against http", human_bytes(sizes.big));
        let big = work.add_file(server, "tls.bin", sizes.big, 4)?;
        let pki = Pki::create(work.path.join("pki").as_std_path());
        let root = work.path.join("srv");
        let tls = NginxConfig { tls: Some(&pki), ..NginxConfig::default() };
        let plain_config = NginxConfig::default();
        let https =
            Nginx::start(root.as_std_path(), work.path.join("nginx-tls").as_std_path(), &tls, "bench https");
        let http = Nginx::start(
            root.as_std_path(),
            work.path.join("nginx").as_std_path(),
            &plain_config,
            "bench http",
        );
        let (Some(https), Some(http)) = (https, http) else {
            report.note("nginx is not installed: the https case was skipped");
            work.remove_file("tls.bin");
            return Ok(());
        };
        let ca = pki.ca_pem.display().to_string();
        let secure = ServedFile { url: https.url("/tls.bin"), ..big.clone() };
        let plain = ServedFile { url: http.url("/tls.bin"), ..big };
        let secure_manifest = work.manifest("https", &[(&secure, "tls.bin")])?;
        let plain_manifest = work.manifest("http", &[(&plain, "tls.bin")])?;
        let (mut over_tls, mut over_http, mut curl) = (Vec::new(), Vec::new(), Vec::new());
        let (mut cpu_tls, mut cpu_http) = (Vec::new(), Vec::new());
        let have_curl = has_program(sh, "curl");
        let trust_ca = [("SSL_CERT_FILE", ca.as_str())];
        for round in 0..runs + usize::from(warmup) {
            let keep = !(warmup && round == 0);
            let dir = work.fresh("ck");
            let t =
                tool.run_with(&models_args("fetch", &secure_manifest, &dir, &["--no-cache"]), &trust_ca)?;
            let dir = work.fresh("ck");
            let p = tool.run(&models_args("fetch", &plain_manifest, &dir, &["--no-cache"]))?;
            if keep {
                over_tls.push(t.seconds);
                over_http.push(p.seconds);
                cpu_tls.push(t.cpu);
                cpu_http.push(p.cpu);
            }
            if have_curl {
                let target = work.fresh_file("curl.bin");
                let url = &secure.url;
                let c = time(|| cmd!(sh, "curl -sS --cacert {ca} -o {target} {url}").quiet().run())?;
                if keep {
                    curl.push(c);
                }
            }
        }
        report.row(&section, "models fetch over https", Stat::seconds(&over_tls), "", "");
        report.row(&section, "models fetch over http", Stat::seconds(&over_http), "", "");
        let ratio = pairwise(&over_tls, &over_http, |a, b| a / b);
        report.goal(&section, "https ÷ http, pair by pair", ratio, "≤ 1.5×", |x| x <= 1.5);
        report.row(&section, "CPU of the fetch over https (user + system)", Stat::seconds(&cpu_tls), "", "");
        report.row(&section, "CPU of the fetch over http (user + system)", Stat::seconds(&cpu_http), "", "");
        if have_curl {
            report.row(&section, "curl -o over https", Stat::seconds(&curl), "", "");
            let ratio = pairwise(&over_tls, &curl, |a, b| a / b);
            report.goal(&section, "fetch ÷ curl, both https", ratio, "≤ 1.15×", |x| x <= 1.15);
        }
        drop((https, http));
        work.remove_file("tls.bin");
        Ok(())
    }

    /// Cases 3, 4 and the cache install: the default set's sizes, hashed and re-verified.
    fn full_verify(&mut self) -> anyhow::Result<()> {
        let Bench { work, server, tool, sh, sizes, runs, report, .. } = self;
        let runs = *runs;
        let pinned = xtask::Manifest::load(Utf8Path::new("models.toml")).context(
            "reading models.toml (run the bench from the workspace root) for the default set's sizes",
        )?;
        let defaults: Vec<_> = pinned.models.iter().filter(|m| !m.optional).collect();
        let mut files = Vec::new();
        for (i, model) in defaults.iter().enumerate() {
            let name = format!("default-{i}.bin");
            let size = (model.size / sizes.verify_scale).max(1);
            files.push((work.add_file(server, &name, size, 10 + i as u64)?, name));
        }
        let total: u64 = files.iter().map(|(f, _)| f.size).sum();
        let pairs: Vec<(&ServedFile, &str)> = files.iter().map(|(f, n)| (f, n.as_str())).collect();
        let manifest = work.manifest("defaults", &pairs)?;
        let cache = work.fresh("cache");
        let first = work.fresh("first");
        let through_cache = ["--cache-dir", cache.as_str()];
        tool.run(&models_args("fetch", &manifest, &first, &through_cache))?;

        let section = format!(
            "3. full verify of the default set's sizes ({} files, {})",
            files.len(),
            human_bytes(total)
        );
        let paths: Vec<Utf8PathBuf> = files.iter().map(|(_, n)| first.join(n)).collect();
        let paths = &paths;
        let have_sha256sum = has_program(sh, "sha256sum");
        let have_openssl = has_program(sh, "openssl");
        let (mut ours, mut theirs, mut openssl) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let out = tool.run(&models_args("verify", &manifest, &first, &["--full", "--jobs", "4"]))?;
            ours.push(out.seconds);
            if have_sha256sum {
                theirs.push(time(|| cmd!(sh, "sha256sum {paths...}").quiet().ignore_stdout().run())?);
            }
            if have_openssl {
                openssl.push(time(|| {
                    cmd!(sh, "openssl dgst -sha256 {paths...}").quiet().ignore_stdout().run()
                })?);
            }
        }
        report.row(&section, "models verify --full --jobs 4", Stat::seconds(&ours), "", "");
        if have_sha256sum {
            report.row(&section, "sha256sum", Stat::seconds(&theirs), "", "");
            let r = pairwise(&theirs, &ours, |a, b| a / b);
            report.goal(&section, "sha256sum ÷ verify", r, "> 1×", |x| x > 1.0);
        }
        if have_openssl {
            report.row(&section, "openssl dgst -sha256", Stat::seconds(&openssl), "", "");
            let r = pairwise(&openssl, &ours, |a, b| a / b);
            report.goal(&section, "openssl (one core) ÷ verify (all cores)", r, "> 1×", |x| x > 1.0);
            // Per core: verify's time on all cores, counted once per core, against openssl's.
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            let per_core = pairwise(&openssl, &ours, |a, b| a / (b * cores));
            report.goal(&section, "speed per core, verify ÷ openssl", per_core, "≥ 1×", |x| x >= 1.0);
        } else {
            report.note("openssl is not installed: its baseline was skipped");
        }

        let section = "4. re-verify of the unchanged default set (stamps)".to_owned();
        let mut stamped = Vec::new();
        for _ in 0..runs.max(5) {
            let out = tool.run(&models_args("verify", &manifest, &first, &[]))?;
            stamped.push(out.seconds);
        }
        let s = Stat::seconds(&stamped);
        report.goal(&section, "models verify (built binary, whole process)", s, "≤ 50 ms", |x| x <= 0.050);

        let section = "8. install of the default set from the cache into a fresh checkout".to_owned();
        let mut installs = Vec::new();
        for _ in 0..runs {
            let fresh = work.fresh("checkout");
            installs.push(tool.run(&models_args("fetch", &manifest, &fresh, &through_cache))?.seconds);
        }
        let s = Stat::seconds(&installs);
        report
            .goal(&section, "models fetch, every file from the cache (hard links)", s, "< 1 s", |x| x < 1.0);
        for (_, name) in &files {
            work.remove_file(name);
        }
        Ok(())
    }

    /// Case 5: kill the fetch half way, run it again, count what the server sends.
    fn resume(&mut self) -> anyhow::Result<()> {
        let Bench { work, server, tool, sizes, report, .. } = self;
        let big = work.add_file(server, "resume.bin", sizes.big, 3)?;
        let manifest = work.manifest("resume", &[(&big, "resume.bin")])?;
        let dir = work.fresh("ck");
        let args = models_args("fetch", &manifest, &dir, &["--no-cache"]);
        let partial = dir.join(format!("resume.bin.{}.part", &big.sha256[..12]));
        let sidecar = dir.join(format!("resume.bin.{}.part-ranges", &big.sha256[..12]));
        // About 64 MiB/s per connection in 1 MiB steps, so the kill lands near the middle.
        work.serve(server, "resume.bin", Some(Duration::from_millis(15)));
        let before_first = server.bytes_sent("/resume.bin");
        let mut child = tool.spawn(&args)?;
        let started = Instant::now();
        let mut at_kill = 0;
        while started.elapsed() < Duration::from_secs(120) {
            // A split download records its pieces in the sidecar; one stream appends.
            at_kill = match std::fs::read_to_string(&sidecar) {
                Ok(text) => pieces_done(&text),
                // Before a split download writes its sidecar, its partial is already full
                // size (holes): that says nothing yet.
                Err(_) => std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) % big.size,
            };
            if at_kill >= big.size / 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill()?;
        let _ = child.wait();
        at_kill = std::fs::read_to_string(&sidecar).map_or(at_kill, |text| pieces_done(&text));
        // The server counts a request's bytes when its answer ends: let the killed ones end.
        let idle = Instant::now();
        while server.active() > 0 && idle.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        work.serve(server, "resume.bin", None);
        let before = server.bytes_sent("/resume.bin");
        tool.run(&args)?;
        let second = server.bytes_sent("/resume.bin") - before;
        let both = server.bytes_sent("/resume.bin") - before_first;
        let share = second as f64 / big.size as f64;
        let section = "5. resume after kill -9 at about half the file".to_owned();
        report.row(
            &section,
            &format!(
                "killed with {:.1}% on disk; bytes sent again",
                100.0 * at_kill as f64 / big.size as f64
            ),
            Stat::percent(share),
            "≤ 52%",
            verdict(share <= 0.52),
        );
        let total = both as f64 / big.size as f64;
        report.row(
            &section,
            "bytes sent over both runs ÷ the file",
            Stat::ratio(total),
            "≤ 1.10×",
            verdict(total <= 1.10),
        );
        work.remove_file("resume.bin");
        Ok(())
    }

    /// Case 10: a file from servers that cap each connection (ours paced to 16 MiB/s,
    /// and nginx `limit_rate 16m`), against aria2c, axel and curl, side by side.
    fn capped(&mut self) -> anyhow::Result<()> {
        let Bench { work, server, tool, sh, sizes, runs, report, .. } = self;
        let runs = *runs;
        let size = sizes.capped;
        let file = work.add_file(server, "capped.bin", size, 5)?;
        // 1 MiB steps with 62.5 ms between them: 16 MiB/s per connection.
        work.serve(server, "capped.bin", Some(Duration::from_micros(62_500)));
        let root = work.path.join("srv");
        let limited = NginxConfig { limit_rate: Some("16m"), ..NginxConfig::default() };
        let nginx = Nginx::start(
            root.as_std_path(),
            work.path.join("nginx-capped").as_std_path(),
            &limited,
            "bench capped",
        );
        let mut servers = vec![("ours", file.url.clone())];
        match &nginx {
            Some(nginx) => servers.push(("nginx", nginx.url("/capped.bin"))),
            None => report.note("nginx is not installed: the capped case ran against our server only"),
        }
        let peers = [
            ("aria2c", has_program(sh, "aria2c")),
            ("axel", has_program(sh, "axel")),
            ("curl", has_program(sh, "curl")),
        ];
        for (peer, present) in peers {
            if !present {
                report.note(&format!("{peer} is not installed: its capped baseline was skipped"));
            }
        }
        for (name, url) in servers {
            let section = format!(
                "10. one {} file, each connection capped at 16 MiB/s ({name} server)",
                human_bytes(size)
            );
            let served = ServedFile { url: url.clone(), ..file.clone() };
            let manifest = work.manifest(&format!("capped-{name}"), &[(&served, "capped.bin")])?;
            let (mut ours, mut aria, mut axel, mut curl, mut rss, mut cpu) =
                (vec![], vec![], vec![], vec![], 0u64, vec![]);
            // One stream over the same capped link, for its CPU time (on our server only:
            // at 16 MiB/s it takes the whole 16 s).
            let mut single_cpu = vec![];
            let hex = &file.sha256;
            for _ in 0..runs {
                let dir = work.fresh("ck");
                let out =
                    tool.run(&models_args("fetch", &manifest, &dir, &["--no-cache", "--connections", "16"]))?;
                ours.push(out.seconds);
                cpu.push(out.cpu);
                rss = rss.max(out.peak_rss);
                if name == "ours" {
                    let dir = work.fresh("ck");
                    let args = ["--no-cache", "--connections", "1"];
                    single_cpu.push(tool.run(&models_args("fetch", &manifest, &dir, &args))?.cpu);
                }
                if peers[0].1 {
                    let dir = work.fresh("aria");
                    let checksum = format!("--checksum=sha-256={hex}");
                    aria.push(time(|| {
                        cmd!(sh, "aria2c -q -x16 -s16 -k1M --file-allocation=none --allow-overwrite=true {checksum} -d {dir} -o capped.bin {url}").quiet().run()
                    })?);
                }
                if peers[1].1 {
                    let target = work.fresh_file("axel.bin");
                    axel.push(peer_time("axel", || {
                        cmd!(sh, "axel -q -n 16 -o {target} {url}").quiet().run()
                    }));
                }
                if peers[2].1 {
                    let target = work.fresh_file("curl.bin");
                    curl.push(peer_time("curl", || cmd!(sh, "curl -sS -o {target} {url}").quiet().run()));
                }
            }
            report.row(
                &section,
                "models fetch --connections 16 (download + sha256 + fsync)",
                Stat::seconds(&ours),
                "",
                "",
            );
            report.row(&section, "CPU of that fetch (user + system)", Stat::seconds(&cpu), "", "");
            if !single_cpu.is_empty() {
                let what = "CPU of one stream (--connections 1), same file";
                report.row(&section, what, Stat::seconds(&single_cpu), "", "");
            }
            if peers[0].1 {
                report.row(
                    &section,
                    "aria2c -x16 -s16 -k1M --checksum=sha-256",
                    Stat::seconds(&aria),
                    "",
                    "",
                );
                report.goal(
                    &section,
                    "fetch ÷ aria2c",
                    pairwise(&ours, &aria, |a, b| a / b),
                    "≤ 1.0×",
                    |x| x <= 1.0,
                );
            }
            if peers[1].1 {
                report.row(&section, "axel -n 16 (no checksum)", Stat::seconds(&axel), "", "");
                report.goal(
                    &section,
                    "fetch ÷ axel",
                    pairwise(&ours, &axel, |a, b| a / b),
                    "≤ 1.0×",
                    |x| x <= 1.0,
                );
            }
            if peers[2].1 {
                report.row(&section, "curl -o (one connection)", Stat::seconds(&curl), "", "");
                report.goal(
                    &section,
                    "curl ÷ fetch",
                    pairwise(&curl, &ours, |a, b| a / b),
                    "≥ 8×",
                    |x| x >= 8.0,
                );
            }
            report.row(
                &section,
                "peak memory of the fetch, 16 connections",
                Stat::mib(rss),
                "≤ 32 MiB",
                verdict(rss <= 32 * MIB),
            );
        }
        drop(nginx);
        work.remove_file("capped.bin");
        Ok(())
    }

    /// Case 12: the default (`--connections auto`) where no flag is passed, against the
    /// best fixed count and the peers, on three links: each connection capped (nginx
    /// `limit_rate 16m`), uncapped (nginx on loopback), and capped in total (our server
    /// pacing all connections together at 64 MiB/s). Each row says the connections the
    /// default used, from its `--log-file`.
    fn defaults(&mut self) -> anyhow::Result<()> {
        let Bench { work, server, tool, sh, sizes, runs, report, .. } = self;
        let runs = *runs;
        let root = work.path.join("srv");
        let capped = work.add_file(server, "d-capped.bin", sizes.capped, 12)?;
        let big = work.add_file(server, "d-big.bin", sizes.big, 13)?;
        let total_size = sizes.capped / 2;
        let total = work.add_file(server, "d-total.bin", total_size, 14)?;
        let body = std::sync::Arc::new(std::fs::read(work.served("d-total.bin"))?);
        // 1 MiB every 15.625 ms over every connection together: 64 MiB/s in all.
        let pacer = std::sync::Arc::new(std::sync::Mutex::new(Instant::now()));
        let (chunk, pause) = (MIB as usize, Duration::from_micros(15_625));
        server.script("/d-total.bin", vec![tests::Reply::Shared { body, chunk, pause, pacer }]);
        let limited = NginxConfig { limit_rate: Some("16m"), ..NginxConfig::default() };
        let dir = |name: &str| work.path.join(name);
        let nginx_capped = Nginx::start(root.as_std_path(), dir("nginx-d1").as_std_path(), &limited, "bench");
        let nginx =
            Nginx::start(root.as_std_path(), dir("nginx-d2").as_std_path(), &NginxConfig::default(), "bench");
        let (Some(nginx_capped), Some(nginx)) = (nginx_capped, nginx) else {
            report.note("nginx is not installed: the defaults case (12) was skipped");
            return Ok(());
        };
        let log = work.path.join("defaults.log");
        // One fetch of `file` from `url` with `extra`; (seconds, CPU, connections story).
        let fetch = |file: &ServedFile, url: String, extra: &[&str]| -> anyhow::Result<(f64, f64, String)> {
            let served = ServedFile { url, ..file.clone() };
            let manifest = work.manifest("defaults", &[(&served, "d.bin")])?;
            let ck = work.fresh("ck");
            let _ = std::fs::remove_file(&log);
            let mut args = vec!["--no-cache", "--log-file", log.as_str()];
            args.extend_from_slice(extra);
            let out = tool.run(&models_args("fetch", &manifest, &ck, &args))?;
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let story = text.lines().find_map(|l| l.find("connections ").map(|i| l[i..].to_owned()));
            Ok((out.seconds, out.cpu, story.unwrap_or_else(|| "one stream".to_owned())))
        };
        let have = |p: &str| has_program(sh, p);
        let firsts = |v: &[(f64, f64, String)]| v.iter().map(|x| x.0).collect::<Vec<_>>();
        let cpus = |v: &[(f64, f64, String)]| v.iter().map(|x| x.1).collect::<Vec<_>>();
        let told = |v: &[(f64, f64, String)]| v.last().map(|x| x.2.clone()).unwrap_or_default();

        let section = format!(
            "12a. the default, each connection capped at 16 MiB/s (nginx limit_rate), {}",
            human_bytes(capped.size)
        );
        let url = nginx_capped.url("/d-capped.bin");
        let (mut auto, mut sixteen, mut aria) = (vec![], vec![], vec![]);
        for _ in 0..runs {
            auto.push(fetch(&capped, url.clone(), &[])?);
            sixteen.push(fetch(&capped, url.clone(), &["--connections", "16"])?);
            if have("aria2c") {
                let out = work.fresh("aria");
                let checksum = format!("--checksum=sha-256={}", capped.sha256);
                aria.push(time(|| {
                    cmd!(sh, "aria2c -q -x16 -s16 -k1M --file-allocation=none --allow-overwrite=true {checksum} -d {out} -o d.bin {url}").quiet().run()
                })?);
            }
        }
        report.row(&section, "models fetch (default: auto)", Stat::seconds(&firsts(&auto)), "", "");
        report.note(&format!("12a: the default's {}", told(&auto)));
        report.row(&section, "models fetch --connections 16", Stat::seconds(&firsts(&sixteen)), "", "");
        if aria.is_empty() {
            report.note("aria2c is not installed: 12a has no peer");
        } else {
            report.row(&section, "aria2c -x16 -s16 -k1M --checksum=sha-256", Stat::seconds(&aria), "", "");
            let ratio = pairwise(&firsts(&auto), &aria, |a, b| a / b);
            report.goal(&section, "default ÷ aria2c", ratio, "≤ 1.0×", |x| x <= 1.0);
        }

        let section = format!("12b. the default, uncapped (nginx on loopback), {}", human_bytes(big.size));
        let url = nginx.url("/d-big.bin");
        let (mut auto, mut one, mut eight, mut curl) = (vec![], vec![], vec![], vec![]);
        for _ in 0..runs {
            auto.push(fetch(&big, url.clone(), &[])?);
            one.push(fetch(&big, url.clone(), &["--connections", "1"])?);
            eight.push(fetch(&big, url.clone(), &["--connections", "8"])?);
            if have("curl") {
                let target = work.fresh_file("curl.bin");
                curl.push(peer_time("curl", || cmd!(sh, "curl -sS -o {target} {url}").quiet().run()));
            }
        }
        report.row(&section, "models fetch (default: auto)", Stat::seconds(&firsts(&auto)), "", "");
        report.row(&section, "CPU of that fetch", Stat::seconds(&cpus(&auto)), "", "");
        report.note(&format!("12b: the default's {}", told(&auto)));
        report.row(&section, "models fetch --connections 1", Stat::seconds(&firsts(&one)), "", "");
        report.row(&section, "CPU of that fetch", Stat::seconds(&cpus(&one)), "", "");
        let ratio = pairwise(&firsts(&auto), &firsts(&one), |a, b| a / b);
        report.goal(&section, "default ÷ --connections 1", ratio, "≤ 1.05×", |x| x <= 1.05);
        let ratio = pairwise(&cpus(&auto), &cpus(&one), |a, b| a / b);
        report.goal(&section, "CPU, default ÷ --connections 1", ratio, "≤ 1.1×", |x| x <= 1.1);
        report.row(&section, "models fetch --connections 8 (split)", Stat::seconds(&firsts(&eight)), "", "");
        report.row(&section, "CPU of that fetch", Stat::seconds(&cpus(&eight)), "", "");
        let ratio = pairwise(&cpus(&eight), &cpus(&one), |a, b| a / b);
        report.goal(&section, "CPU, split in 8 ÷ one stream", ratio, "≤ 1.1×", |x| x <= 1.1);
        report.note(&format!("12b: --connections 8: {}", told(&eight)));
        if !curl.is_empty() {
            report.row(&section, "curl -o (no checksum)", Stat::seconds(&curl), "", "");
            let ratio = pairwise(&firsts(&auto), &curl, |a, b| a / b);
            report.goal(&section, "default ÷ curl -o", ratio, "≤ 1.0×", |x| x <= 1.0);
        }

        let section = format!(
            "12c. the default, a link capped in total at 64 MiB/s (our server), {}",
            human_bytes(total_size)
        );
        let (mut auto, mut one) = (vec![], vec![]);
        for _ in 0..runs {
            auto.push(fetch(&total, total.url.clone(), &[])?);
            one.push(fetch(&total, total.url.clone(), &["--connections", "1"])?);
        }
        report.row(&section, "models fetch (default: auto)", Stat::seconds(&firsts(&auto)), "", "");
        report.row(&section, "models fetch --connections 1", Stat::seconds(&firsts(&one)), "", "");
        let ratio = pairwise(&firsts(&auto), &firsts(&one), |a, b| a / b);
        report.goal(&section, "default ÷ one stream", ratio, "≤ 1.05×", |x| x <= 1.05);
        let most = auto.iter().map(|x| most_connections(&x.2)).max().unwrap_or(1);
        report.row(
            &section,
            "connections the default opened at once, most over the rounds",
            Stat::count(most),
            "≤ 2",
            verdict(most <= 2),
        );
        report.note(&format!("12c: the default's {}", told(&auto)));
        drop((nginx, nginx_capped));
        for name in ["d-capped.bin", "d-big.bin", "d-total.bin"] {
            work.remove_file(name);
        }
        Ok(())
    }

    /// Case 11: an S3 store (SeaweedFS on loopback) as the mirror: publishing one big file
    /// against one signed `curl -T` PUT, fetching it against `curl --aws-sigv4`.
    fn s3(&mut self) -> anyhow::Result<()> {
        let Bench { work, server, tool, sh, sizes, runs, report, .. } = self;
        let runs = *runs;
        if find_weed().is_none() {
            report.note("weed (SeaweedFS) is not installed: the S3 case was skipped (`.ci/run` installs it)");
            return Ok(());
        }
        let have_curl = has_program(sh, "curl");
        if !have_curl {
            report.note("curl is not installed: the S3 case has no baseline");
        }
        let Some(weed) = Seaweed::start(work.path.join("weed").as_std_path(), "bench s3") else {
            return Ok(());
        };
        let env = weed.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let file = work.add_file(server, "s3.bin", sizes.big, 11)?;
        let manifest = work.manifest("s3", &[(&file, "s3.bin")])?;
        // The file in a checkout, verified and stamped: what `models mirror` publishes.
        let source = work.fresh("s3-source");
        tool.run_with(&models_args("fetch", &manifest, &source, &["--no-cache"]), &env)?;
        let local = source.join("s3.bin");
        // The fetch checkouts' own URL is dead, so every byte comes from the bucket.
        let dead_port = tests::daemons::DeadPort::hold();
        let dead = ServedFile { url: format!("{}/gone", dead_port.url()), ..file.clone() };
        let dead_manifest = work.manifest("s3-dead", &[(&dead, "s3.bin")])?;
        let credentials = format!("{}:{}", weed.access_key, weed.secret_key);
        let endpoint = weed.endpoint();
        let section =
            format!("11. one {} object in an S3 store (SeaweedFS on loopback)", human_bytes(file.size));
        let (mut publish, mut put, mut fetch, mut get, mut rss) = (vec![], vec![], vec![], vec![], 0u64);
        for round in 0..runs {
            let prefix = format!("s3://{}/bench-{round}", Seaweed::BUCKET);
            let out = tool.run_with(&models_args("mirror", &manifest, &source, &[&prefix]), &env)?;
            publish.push(out.seconds);
            if have_curl {
                let target = format!("{endpoint}/{}/curl-{round}/s3.bin", Seaweed::BUCKET);
                put.push(time(|| {
                    cmd!(sh, "curl -sS --fail --aws-sigv4 aws:amz:us-east-1:s3 -u {credentials} -T {local} {target}")
                        .quiet()
                        .run()
                })?);
            }
            let dir = work.fresh("s3-ck");
            let out = tool.run_with(
                &models_args("fetch", &dead_manifest, &dir, &["--no-cache", "--mirror", &prefix]),
                &env,
            )?;
            fetch.push(out.seconds);
            rss = rss.max(out.peak_rss);
            if have_curl {
                let object = format!("{endpoint}/{}/bench-{round}/sha256/{}", Seaweed::BUCKET, file.sha256);
                let target = work.fresh_file("s3-curl.bin");
                get.push(time(|| {
                    cmd!(sh, "curl -sS --fail --aws-sigv4 aws:amz:us-east-1:s3 -u {credentials} -o {target} {object}")
                        .quiet()
                        .run()
                })?);
            }
        }
        report.row(
            &section,
            "models mirror s3:// (multipart, parts in parallel)",
            Stat::seconds(&publish),
            "",
            "",
        );
        report.row(
            &section,
            "models fetch --mirror s3:// (download + sha256 + fsync)",
            Stat::seconds(&fetch),
            "",
            "",
        );
        report.row(&section, "peak memory of that fetch", Stat::mib(rss), "", "");
        if have_curl {
            report.row(&section, "curl -T --aws-sigv4 (one PUT)", Stat::seconds(&put), "", "");
            report.goal(
                &section,
                "publish speed ÷ curl PUT speed",
                pairwise(&put, &publish, |c, o| c / o),
                "≥ 0.9×",
                |x| x >= 0.9,
            );
            report.row(&section, "curl --aws-sigv4 -o (no checksum)", Stat::seconds(&get), "", "");
            report.goal(
                &section,
                "fetch speed ÷ curl GET speed",
                pairwise(&get, &fetch, |c, o| c / o),
                "≥ 0.9×",
                |x| x >= 0.9,
            );
        }
        drop(weed);
        work.remove_file("s3.bin");
        Ok(())
    }

    /// Case 6: many small files behind a slow server, one job against eight.
    fn many_files(&mut self) -> anyhow::Result<()> {
        let Bench { work, server, tool, sizes, runs, report, .. } = self;
        let runs = *runs;
        let mut files = Vec::new();
        for i in 0..sizes.many_files {
            let name = format!("many-{i}.bin");
            files.push((work.add_file(server, &name, sizes.many_size, 100 + i as u64)?, name));
        }
        let pairs: Vec<(&ServedFile, &str)> = files.iter().map(|(f, n)| (f, n.as_str())).collect();
        let manifest = work.manifest("many", &pairs)?;
        server.set_latency(sizes.latency);
        let (mut one, mut eight) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            for (jobs, into) in [("1", &mut one), ("8", &mut eight)] {
                let dir = work.fresh("ck");
                let out =
                    tool.run(&models_args("fetch", &manifest, &dir, &["--no-cache", "--jobs", jobs]))?;
                into.push(out.seconds);
            }
        }
        server.set_latency(Duration::ZERO);
        let section = format!(
            "6. {} files of {} with {} ms server latency",
            files.len(),
            human_bytes(sizes.many_size),
            sizes.latency.as_millis()
        );
        report.row(&section, "--jobs 1", Stat::seconds(&one), "", "");
        report.row(&section, "--jobs 8", Stat::seconds(&eight), "", "");
        let r = pairwise(&one, &eight, |a, b| a / b);
        report.goal(&section, "--jobs 1 ÷ --jobs 8", r, "≥ 5×", |x| x >= 5.0);
        for (_, name) in &files {
            work.remove_file(name);
        }
        Ok(())
    }

    /// Case 7: what the tool costs before it does anything.
    fn startup(&mut self) -> anyhow::Result<()> {
        let Bench { work, tool, runs, report, .. } = self;
        let runs = *runs;
        let manifest = work.path.join("empty.toml");
        std::fs::write(&manifest, "# nothing pinned\n")?;
        let dir = work.fresh("ck");
        let mut times = Vec::new();
        for _ in 0..runs.max(5) {
            times.push(tool.run(&models_args("verify", &manifest, &dir, &[]))?.seconds);
        }
        report.row(
            "7. start-up: verify of an empty selection",
            "built binary, whole process",
            Stat::seconds(&times),
            "",
            "",
        );
        Ok(())
    }
}

/// The most connections a story (`connections 1→2→1 (rate …): held at 1, …`) went
/// through.
fn most_connections(story: &str) -> u64 {
    let counts = story.trim_start_matches("connections ").split([' ', ':']).next().unwrap_or("1");
    counts.split('→').filter_map(|n| n.parse().ok()).max().unwrap_or(1)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn has_program(sh: &Shell, name: &str) -> bool {
    let script = format!("command -v {name}");
    cmd!(sh, "sh -c {script}").quiet().ignore_stdout().run().is_ok()
}

fn time<E: std::error::Error + Send + Sync + 'static>(
    f: impl FnOnce() -> Result<(), E>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    f()?;
    Ok(started.elapsed().as_secs_f64())
}

/// The time of a peer's run, or NaN (left out of every figure) when the peer failed:
/// a peer that crashes (axel has been seen to, under load) is its own fault, not ours,
/// and says so in a note instead of ending the bench.
fn peer_time<E: std::error::Error + Send + Sync + 'static>(
    peer: &str,
    f: impl FnOnce() -> Result<(), E>,
) -> f64 {
    time(f).unwrap_or_else(|e| {
        eprintln!("note: {peer} failed in this round, which its figures leave out: {e}");
        f64::NAN
    })
}

/// `f(a[i], b[i])` for each round, summarised.
fn pairwise(a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) -> Stat {
    let ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| f(*x, *y)).collect();
    Stat::of(&ratios, Unit::Ratio)
}

#[derive(Clone, Copy, Debug)]
enum Unit {
    Seconds,
    Ratio,
    Mib,
    Percent,
    Count,
}

#[derive(Clone, Debug)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
    unit: Unit,
}

impl Stat {
    fn of(values: &[f64], unit: Unit) -> Stat {
        // A round a peer did not finish (it crashed: see `peer_time`) is left out.
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        let median = match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Stat {
            median,
            min: sorted.first().copied().unwrap_or(f64::NAN),
            max: sorted.last().copied().unwrap_or(f64::NAN),
            unit,
        }
    }

    fn seconds(values: &[f64]) -> Stat {
        Stat::of(values, Unit::Seconds)
    }

    fn ratio(x: f64) -> Stat {
        Stat::of(&[x], Unit::Ratio)
    }

    fn mib(bytes: u64) -> Stat {
        Stat::of(&[bytes as f64 / MIB as f64], Unit::Mib)
    }

    fn percent(share: f64) -> Stat {
        Stat::of(&[share * 100.0], Unit::Percent)
    }

    fn count(n: u64) -> Stat {
        Stat::of(&[n as f64], Unit::Count)
    }

    fn show(&self, x: f64) -> String {
        match self.unit {
            Unit::Seconds if x < 1.0 => format!("{:.1} ms", x * 1000.0),
            Unit::Seconds => format!("{x:.2} s"),
            Unit::Ratio => format!("{x:.2}×"),
            Unit::Mib => format!("{x:.1} MiB"),
            Unit::Percent => format!("{x:.1}%"),
            Unit::Count => format!("{x:.0}"),
        }
    }
}

#[derive(Default)]
struct Report {
    rows: Vec<(String, String, Stat, String, String)>,
    notes: Vec<String>,
}

impl Report {
    fn row(&mut self, section: &str, what: &str, stat: Stat, goal: &str, verdict: &str) {
        self.rows.push((section.to_owned(), what.to_owned(), stat, goal.to_owned(), verdict.to_owned()));
    }

    /// A row whose verdict is `met` applied to the median.
    fn goal(&mut self, section: &str, what: &str, stat: Stat, goal: &str, met: impl Fn(f64) -> bool) {
        let verdict = verdict(met(stat.median));
        self.row(section, what, stat, goal, verdict);
    }

    fn note(&mut self, note: &str) {
        self.notes.push(note.to_owned());
    }

    fn render(&self, quick: bool, sh: &Shell) -> String {
        let mut out = String::from("# Benchmarks\n\n");
        let _ = writeln!(
            out,
            "Made by `cargo xtask bench{}` on {} ({} cores), {}. Medians over rounds, with min–max; \
             ratios are taken pair by pair within a round.\n",
            if quick { " --quick" } else { "" },
            std::env::consts::ARCH,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            cmd!(sh, "date -u +%Y-%m-%d").quiet().read().unwrap_or_else(|_| "today".to_owned()),
        );
        // What bounds the fast cases: without SHA-NI, sha2 hashes at about 170 MB/s.
        let sha_ni = std::fs::read_to_string("/proc/cpuinfo").ok().map(|info| info.contains(" sha_ni"));
        let _ = writeln!(
            out,
            "SHA-NI: {}. Scratch files (the tool's and its peers' outputs) {}.\n",
            match sha_ni {
                Some(true) => "yes",
                Some(false) => "no (hashing bounds every case above about 170 MB/s)",
                None => "unknown",
            },
            match std::env::temp_dir().starts_with("/dev/shm") {
                true =>
                    "on tmpfs (`TMPDIR=/dev/shm`: the tool's fsync costs nothing there, as peers do none)",
                false => "on the disk of `TMPDIR` (the tool fsyncs, its peers do not)",
            },
        );
        out.push_str(
            "| case | measurement | median | min–max | goal | verdict |\n|---|---|---|---|---|---|\n",
        );
        // Cases are measured in the order that shares data best, shown in numbered order.
        let mut rows: Vec<_> = self.rows.iter().collect();
        rows.sort_by_key(|(section, ..)| {
            section.split('.').next().and_then(|n| n.parse::<u32>().ok()).unwrap_or(u32::MAX)
        });
        let mut last = "";
        for (section, what, stat, goal, verdict) in rows {
            let shown = if section == last { "" } else { section.as_str() };
            last = section;
            let spread = if (stat.max - stat.min).abs() < f64::EPSILON {
                "–".to_owned()
            } else {
                format!("{}–{}", stat.show(stat.min), stat.show(stat.max))
            };
            let _ = writeln!(
                out,
                "| {shown} | {what} | {} | {spread} | {goal} | {verdict} |",
                stat.show(stat.median)
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "\nNote: {note}.");
        }
        out
    }
}

/// `models COMMAND -q --manifest M --checkpoints-dir D EXTRA...`
fn models_args<'a>(
    command: &'a str,
    manifest: &'a Utf8Path,
    dir: &'a Utf8Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args =
        vec!["models", command, "-q", "--manifest", manifest.as_str(), "--checkpoints-dir", dir.as_str()];
    args.extend_from_slice(extra);
    args
}

/// The tool under test: this very binary, run as a child process.
struct Tool {
    exe: std::path::PathBuf,
}

/// One run of the tool.
struct Measured {
    seconds: f64,
    peak_rss: u64,
    /// User and system CPU seconds of the process, all its threads.
    cpu: f64,
}

impl Tool {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.exe);
        command.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        // The machine's CA settings would change what https costs; cases set their own.
        command.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
        // Measure the tool, not a developer's proxy or shared mirrors.
        for var in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "XTASK_MODELS_MIRRORS",
            "XTASK_MODELS_OFFLINE",
        ] {
            command.env_remove(var);
        }
        command
    }

    fn spawn(&self, args: &[&str]) -> anyhow::Result<std::process::Child> {
        Ok(self.command(args).spawn()?)
    }

    /// Runs to completion; wall time and the child's own peak memory (from wait4).
    fn run(&self, args: &[&str]) -> anyhow::Result<Measured> {
        self.run_with(args, &[])
    }

    /// [`Tool::run`] with these environment variables set.
    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Measured> {
        let started = Instant::now();
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        let child = command.spawn()?;
        let pid = child.id();
        // The kernel's ru_maxrss of a child counts the parent's memory at fork (exec keeps
        // the old high-water mark), so it measured this bench as much as the tool. The
        // tool's own high-water mark is sampled from /proc while it runs instead.
        let done = std::sync::atomic::AtomicBool::new(false);
        let (waited, sampled) = std::thread::scope(|scope| {
            let sampler = scope.spawn(|| {
                let mut peak = 0u64;
                while !done.load(Ordering::SeqCst) {
                    peak = peak.max(high_water_mark(pid).unwrap_or(0));
                    std::thread::sleep(Duration::from_millis(2));
                }
                peak
            });
            let waited = wait_with_rusage(child);
            done.store(true, Ordering::SeqCst);
            (waited, sampler.join().unwrap_or(0))
        });
        let (code, maxrss, cpu) = waited?;
        let seconds = started.elapsed().as_secs_f64();
        if code != 0 {
            bail!("`xtask {}` exited with {code}", args.join(" "));
        }
        let peak_rss = if sampled > 0 { sampled } else { maxrss };
        Ok(Measured { seconds, peak_rss, cpu })
    }
}

/// `VmHWM` of a running process, in bytes: the peak resident memory of its own address
/// space since it started (Linux; `None` elsewhere, or once it has exited).
fn high_water_mark(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// Waits for `child` and returns its exit code and peak resident memory in bytes.
#[cfg(unix)]
fn wait_with_rusage(child: std::process::Child) -> anyhow::Result<(i32, u64, f64)> {
    let pid = libc::pid_t::try_from(child.id())?;
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in; zeroed is a valid value for it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own unreaped child; both pointers are valid for the call.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = secs(usage.ru_utime) + secs(usage.ru_stime);
    // Linux reports ru_maxrss in KiB.
    Ok((code, u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024, cpu))
}

/// Elsewhere there is no wait4: the exit code, and no memory figure.
#[cfg(not(unix))]
fn wait_with_rusage(mut child: std::process::Child) -> anyhow::Result<(i32, u64, f64)> {
    Ok((child.wait()?.code().unwrap_or(-1), 0, 0.0))
}

/// A scratch folder for data and checkouts, removed when the bench ends.
struct Workdir {
    path: Utf8PathBuf,
    count: AtomicU64,
}

impl Workdir {
    fn new() -> anyhow::Result<Workdir> {
        let path =
            Utf8PathBuf::try_from(std::env::temp_dir())?.join(format!("xtask-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(Workdir { path, count: AtomicU64::new(0) })
    }

    /// A new, not yet existing folder (each checkout starts empty).
    fn fresh(&self, stem: &str) -> Utf8PathBuf {
        let n = self.count.fetch_add(1, Ordering::SeqCst);
        let path = self.path.join(format!("{stem}-{n}"));
        // Drop the last round's files so the disk does not fill up over many rounds.
        let previous = self.path.join(format!("{stem}-{}", n.wrapping_sub(1)));
        let _ = std::fs::remove_dir_all(previous);
        path
    }

    fn fresh_file(&self, name: &str) -> Utf8PathBuf {
        let path = self.path.join(name);
        let _ = std::fs::remove_file(&path);
        path
    }

    fn manifest(&self, name: &str, files: &[(&ServedFile, &str)]) -> anyhow::Result<Utf8PathBuf> {
        let mut text = String::new();
        for (file, path) in files {
            let _ = writeln!(
                text,
                "[[model]]\nname = {:?}\npath = {path:?}\nsize = {}\nsha256 = {:?}\nurls = [{:?}]\n",
                path.replace('.', "-"),
                file.size,
                file.sha256,
                file.url
            );
        }
        let manifest = self.path.join(format!("{name}.toml"));
        std::fs::write(&manifest, text)?;
        Ok(manifest)
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[derive(Clone)]
struct ServedFile {
    size: u64,
    sha256: String,
    url: String,
}

impl Workdir {
    /// Writes `size` bytes of the test payload for `seed` into the served folder, hashing
    /// them on the way, and serves the file from `server` at `/name`.
    fn add_file(&self, server: &Server, name: &str, size: u64, seed: u64) -> anyhow::Result<ServedFile> {
        let path = self.served(name);
        std::fs::create_dir_all(self.path.join("srv"))?;
        let mut file = std::io::BufWriter::with_capacity(MIB as usize, File::create(&path)?);
        let mut hasher = Sha256::new();
        let mut payload = Payload::new(seed);
        let mut block = vec![0u8; MIB as usize];
        let mut left = size;
        while left > 0 {
            let n = left.min(MIB) as usize;
            payload.fill(&mut block[..n]);
            hasher.update(&block[..n]);
            file.write_all(&block[..n])?;
            left -= n as u64;
        }
        file.flush()?;
        self.serve(server, name, None);
        Ok(ServedFile { size, sha256: xtask::hex(&hasher.finalize()), url: server.url(&format!("/{name}")) })
    }

    /// (Re)scripts `/name` to send the file, paced or at full speed.
    fn serve(&self, server: &Server, name: &str, pace: Option<Duration>) {
        let path = self.served(name).into_std_path_buf();
        server.script(&format!("/{name}"), vec![Reply::File { path, pace }]);
    }

    fn served(&self, name: &str) -> Utf8PathBuf {
        self.path.join("srv").join(name)
    }

    fn remove_file(&self, name: &str) {
        let _ = std::fs::remove_file(self.served(name));
    }
}

/// `1.5 GiB`, `64.0 MiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    if unit == "B" { format!("{bytes} B") } else { format!("{value:.1} {unit}") }
}
