//! How failures read: one diagnosis per cause, said once with the hosts it hit, then one
//! line per failed model; the full manual-download blocks with `--verbose`, in the log
//! and in `--json`; and a warning when a model only arrived because a later URL stood in
//! for a dead one.

use tests::daemons::DeadPort;
use tests::{Pin, Reply, payload};

use crate::{FAST, sandbox, scenario};

#[test]
fn several_failures_say_their_cause_once_then_one_line_per_model() {
    let sb = sandbox();
    let (held_a, held_b) = (DeadPort::hold(), DeadPort::hold());
    let (a, b) = (held_a.port, held_b.port);
    let pins: Vec<Pin> = (0..6)
        .map(|i| {
            let urls = [format!("http://127.0.0.1:{a}/m{i}"), format!("http://localhost:{b}/m{i}")];
            Pin::new(&format!("m{i}"), &format!("m{i}.bin"), &payload(100, 500 + i), &urls)
        })
        .collect();
    sb.write_manifest(&pins);
    let log = sb.dir.join("attempts.log");
    let mut args = vec!["fetch", "--retries", "0", "--log-file", log.to_str().unwrap()];
    args.extend(FAST);
    let run = sb.models(&args);
    run.expect(1);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(lines.len() <= 14, "short: {} lines\n{}", lines.len(), run.stderr);
    assert_eq!(lines[0], "error: 6 models could not be fetched", "{}", run.stderr);
    let cause = format!("cannot connect to 127.0.0.1:{a}, localhost:{b}");
    assert_eq!(run.stderr.matches(&cause).count(), 1, "{}", run.stderr);
    for i in 0..6 {
        let line = format!("    m{i} -> {}", sb.file(&format!("m{i}.bin")).display());
        assert!(run.stderr.contains(&line), "m{i} has its line: {}", run.stderr);
    }
    assert!(!run.stderr.contains("tried:"), "no full blocks without --verbose: {}", run.stderr);
    assert!(run.stderr.contains("--verbose"), "says where the details are: {}", run.stderr);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(logged.matches("# error: could not fetch").count(), 6, "the log keeps every block:\n{logged}");

    let mut args = vec!["fetch", "--retries", "0", "--verbose"];
    args.extend(FAST);
    let verbose = sb.models(&args);
    verbose.expect(1);
    assert_eq!(
        verbose.stderr.matches("tried:").count(),
        6,
        "--verbose prints every block: {}",
        verbose.stderr
    );
    assert!(verbose.stderr.contains("gave up on http://127.0.0.1"), "{}", verbose.stderr);

    let json = sb.models(&["fetch", "--retries", "0", "--json", "--backoff-ms", "1"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let tried = doc["models"].as_array().unwrap().iter().map(|m| m["tried"].as_array().map_or(0, Vec::len));
    assert!(tried.clone().all(|n| n == 2), "--json keeps each source tried: {doc}");
}

#[test]
fn one_failure_gets_its_full_block() {
    let sb = sandbox();
    let dead = DeadPort::hold();
    let port = dead.port;
    sb.write_manifest(&[Pin::new("only", "only.bin", b"x", &[format!("http://127.0.0.1:{port}/only")])]);
    let run = sb.models(&["fetch", "--retries", "0"]);
    run.expect(1);
    assert!(run.stderr.contains("error: could not fetch only (only.bin)"), "{}", run.stderr);
    assert!(run.stderr.contains("expected sha256:"), "{}", run.stderr);
}

#[test]
fn the_shipped_manifest_fails_without_a_network_in_a_few_lines_naming_the_hosts() {
    // Every request goes to a proxy nobody listens on: no network, and nothing leaves
    // the machine.
    let mut sb = sandbox();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models.toml");
    std::fs::copy(shipped, &sb.manifest).unwrap();
    let dead = DeadPort::hold();
    let proxy = dead.url();
    sb.set_env("HTTPS_PROXY", &proxy);
    sb.set_env("HTTP_PROXY", &proxy);
    let run = sb.models(&["fetch", "--no-cache", "--retries", "0"]);
    run.expect(1);
    let lines = run.output().lines().count();
    assert!(lines <= 40, "{lines} lines:\n{}", run.output());
    let first = run.stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: ") && first.ends_with("models could not be fetched"), "{}", run.stderr);
    let cause = run.stderr.lines().nth(1).unwrap_or_default();
    assert!(
        cause.contains("github.com") && cause.contains("huggingface.co"),
        "the hosts, once: {}",
        run.stderr
    );
}

#[test]
fn a_model_that_came_from_a_later_url_warns_about_the_dead_one() {
    let sc = scenario();
    let data = payload(1000, 520);
    sc.serve("/gone", vec![Reply::status(404)]);
    sc.serve("/good", vec![Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &["/gone", "/good"]);
    let run = sc.models(&["fetch", "--no-cache"]);
    run.expect(0);
    let warning = run.stderr.lines().find(|l| l.starts_with("warning: m: came from")).unwrap_or_else(|| {
        panic!("a warning names the dead URL: {}", run.stderr);
    });
    assert!(warning.contains(&sc.url("/good")) && warning.contains(&sc.url("/gone")), "{warning}");
    assert!(warning.contains("(not-found)") && warning.contains("models.toml"), "{warning}");

    // A transient fault on the first URL is no reason to edit the manifest.
    let sc = scenario();
    let data = payload(1000, 521);
    sc.serve("/busy", vec![Reply::status(503)]);
    sc.serve("/good", vec![Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &["/busy", "/good"]);
    let run = sc.models(&["fetch", "--no-cache", "--retries", "0"]);
    run.expect(0);
    assert!(!run.stderr.contains("came from"), "{}", run.stderr);
}

#[test]
fn a_redirect_to_a_dead_host_is_booked_on_that_host_and_its_origin_still_serves_the_next_model() {
    // The summary used to blame the origin, and the per-run breaker then failed the next
    // model on that healthy origin without a request.
    let sc = scenario();
    let dead = DeadPort::hold();
    sc.serve("/moved", vec![Reply::Redirect(format!("{}/gone", dead.url()))]);
    let good = payload(1000, 530);
    sc.serve("/good", vec![Reply::Body(good.clone())]);
    sc.pin("a-moved", "a.bin", &payload(1000, 531), &["/moved"]);
    sc.pin("b-good", "b.bin", &good, &["/good"]);
    let mut args = vec!["fetch", "--jobs", "1", "--retries", "0", "--no-cache"];
    args.extend(FAST);
    let run = sc.models(&args);
    run.expect(1);
    assert_eq!(std::fs::read(sc.file("b.bin")).unwrap(), *good, "the origin serves the next model");
    assert!(!run.stderr.contains("not tried again"), "{}", run.stderr);
    let origin = sc.server.url("").trim_start_matches("http://").trim_end_matches('/').to_owned();
    let at = format!("at 127.0.0.1:{} (reached by a redirect from {origin})", dead.port);
    assert!(run.stderr.contains(&at), "the dead host and how it was reached: {}", run.stderr);
}

#[test]
fn an_unreachable_s3_endpoint_is_named_not_the_bucket_and_a_bad_bucket_name_is_a_usage_error() {
    let mut sc = scenario();
    let dead = DeadPort::hold();
    sc.set_env("AWS_ENDPOINT_URL", &dead.url());
    sc.set_env("AWS_ACCESS_KEY_ID", "AKIDTEST");
    sc.set_env("AWS_SECRET_ACCESS_KEY", "test-secret");
    sc.serve("/gone", vec![Reply::status(404)]);
    for i in 0..2 {
        sc.pin(&format!("m{i}"), &format!("m{i}.bin"), &payload(1000, 532 + i), &["/gone"]);
    }
    let mut args = vec!["fetch", "--retries", "0", "--no-cache", "--mirror", "s3://models/team"];
    args.extend(FAST);
    let run = sc.models(&args);
    run.expect(1);
    let endpoint = format!("cannot connect to 127.0.0.1:{}", dead.port);
    assert!(run.stderr.contains(&endpoint), "the endpoint is where it failed: {}", run.stderr);
    assert!(!run.stderr.contains("cannot connect to models"), "not the bucket: {}", run.stderr);
    let run = sc.models(&["fetch", "--mirror", "s3://mo|dels/team"]);
    run.expect(2);
    assert!(run.stderr.contains("names no valid bucket"), "{}", run.stderr);
    assert!(!run.stderr.contains("AWS_SECRET_ACCESS_KEY"), "not taken for a wrong secret: {}", run.stderr);
}

#[test]
fn s3_locations_with_dot_segments_or_empty_names_are_refused_never_resolved() {
    // `s3://models/team/../public` used to write to `models/public/…` while every
    // message named `…/team/../public/…`.
    let sc = scenario();
    sc.pin("m", "m.bin", &payload(10, 540), &["/m"]);
    for location in ["s3://models/team/../public", "s3://../models/x", "s3://models/a//b", "s3://models/./x"]
    {
        let run = sc.models(&["fetch", "--mirror", location]);
        run.expect(2);
        assert!(
            run.stderr.contains("`..` name") || run.stderr.contains("bucket"),
            "{location}: {}",
            run.stderr
        );
        let run = sc.models(&["mirror", location, "--all"]);
        run.expect(2);
    }
}

#[test]
fn a_name_server_that_fails_for_now_is_asked_again_and_a_rerun_resolves() {
    // One SERVFAIL (EAI_AGAIN) used to count as "does not resolve": not retried, the
    // breaker tripped, and every model of that host failed.
    let Some(dns) = tests::dns::FlakyDns::start("dns") else { return };
    let sb = sandbox();
    let server = tests::Server::start();
    let data = payload(1000, 560);
    server.script("/m", vec![Reply::Body(data.clone())]);
    let url = server.url("/m").replace("127.0.0.1", "flaky.test");
    sb.write_manifest(&[Pin::new("m", "m.bin", &data, &[url])]);
    let resolv = dns.resolv_conf(&sb.dir);
    let log = sb.dir.join("attempts.log");
    let mut args = vec!["fetch", "--no-cache", "--retries", "2", "--log-file", log.to_str().unwrap()];
    args.extend(FAST);
    let run = sb.models_resolving_with(&resolv, &args);
    run.expect(1);
    let log_text = std::fs::read_to_string(&log).unwrap();
    let attempts: Vec<&str> = log_text.lines().filter(|l| l.contains(" attempt=")).collect();
    assert_eq!(attempts.len(), 3, "asked again, twice:\n{log_text}");
    assert!(attempts.iter().all(|l| l.contains("class=dns-temporary")), "{log_text}");
    assert!(!run.stderr.contains("does not resolve"), "not a missing host: {}", run.stderr);
    dns.answer();
    sb.models_resolving_with(&resolv, &args).expect(0);
    assert_eq!(std::fs::read(sb.file("m.bin")).unwrap(), *data);
}
