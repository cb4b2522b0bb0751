//! Protocol edges found against real servers and proxies: each fault is classed as what
//! it is and named where it happened. Found by hostile rounds: each test is named for
//! the promise it keeps, and each failed before its fix.

use tests::{Pin, Reply, Server, payload};

use crate::{FAST, sandbox, scenario};

fn args_with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    let mut all = base.to_vec();
    all.extend_from_slice(extra);
    all
}

#[test]
fn no_proxy_takes_cidr_blocks_as_curl_does() {
    let mut sc = scenario();
    let data = sc.model("m", "m.bin", payload(500, 540));
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    sc.set_env("http_proxy", &format!("http://127.0.0.1:{dead}"));
    sc.set_env("NO_PROXY", "10.0.0.0/8,127.0.0.0/8");
    sc.models(&["fetch"]).expect(0);
    assert_eq!(std::fs::read(sc.file("m.bin")).unwrap(), *data);
}

#[test]
fn a_proxy_that_refuses_is_named_and_407_asks_for_its_credentials() {
    let proxy = Server::start();
    proxy.script(
        "http://models.invalid/m.bin",
        vec![Reply::status_with(407, "Proxy-Authenticate", "Basic realm=\"p\"")],
    );
    let mut sb = sandbox();
    sb.write_manifest(&[Pin::new("m", "m.bin", b"x", &["http://models.invalid/m.bin".into()])]);
    sb.set_env("http_proxy", &proxy.url(""));
    let run = sb.models(&args_with(&["fetch"], FAST));
    run.expect(1);
    assert!(run.stderr.contains("(proxy-refused)") && run.stderr.contains("credentials"), "{}", run.stderr);
    assert!(!run.stderr.contains("DNS"), "not a network hint: {}", run.stderr);
}

#[test]
fn a_ca_file_that_cannot_be_read_is_itself_the_error() {
    let mut sb = sandbox();
    sb.write_manifest(&[Pin::new("m", "m.bin", b"x", &["https://127.0.0.1:9/m".into()])]);
    sb.set_env("SSL_CERT_FILE", "/nonexistent/ca.pem");
    let run = sb.models(&args_with(&["fetch"], FAST));
    run.expect(1);
    assert!(run.stderr.contains("SSL_CERT_FILE=/nonexistent/ca.pem cannot be read"), "{}", run.stderr);
}

#[test]
fn a_compressed_body_names_its_encoding() {
    let sc = scenario();
    let data = payload(1000, 541);
    let gzip = Reply::Status {
        code: 200,
        headers: vec![("Content-Encoding".into(), "gzip".into())],
        body: "\u{1f}compressed".into(),
    };
    sc.serve("/m", vec![gzip]);
    sc.pin("m", "m.bin", &data, &["/m"]);
    let run = sc.models(&args_with(&["fetch"], FAST));
    run.expect(1);
    assert!(
        run.stderr.contains("Content-Encoding: gzip") && run.stderr.contains("(content-encoding)"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("corrupted"), "{}", run.stderr);
}

#[test]
fn the_attempt_log_records_the_status_a_resumed_body_came_with() {
    let sc = scenario();
    let data = payload(300_000, 542);
    sc.serve("/m", vec![Reply::Truncate { body: data.clone(), after: 100_000 }, Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &["/m"]);
    let log = sc.dir.join("log");
    sc.models(&args_with(&["fetch", "--log-file", log.to_str().unwrap()], FAST)).expect(0);
    let text = std::fs::read_to_string(&log).unwrap();
    let last = text.lines().last().unwrap();
    assert!(last.contains("status=206 resumed_from=100000") && last.contains("decision=done"), "{text}");
}

#[test]
fn a_relative_redirect_whose_query_holds_a_url_stays_on_its_server() {
    let sc = scenario();
    let data = payload(1000, 543);
    sc.serve("/start", vec![Reply::Redirect("/dl?to=https://cdn.invalid/x".into())]);
    sc.serve("/dl?to=https://cdn.invalid/x", vec![Reply::Body(data.clone())]);
    sc.serve("/a/b/c", vec![Reply::Redirect("../../final.bin".into())]);
    sc.serve("/final.bin", vec![Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &["/start"]);
    sc.pin("n", "n.bin", &data, &["/a/b/c"]);
    sc.models(&args_with(&["fetch"], FAST)).expect(0);
}

#[test]
fn faults_are_classed_by_what_they_are() {
    // A redirect to a file: URL is the server's doing, not the manifest's.
    let sc = scenario();
    sc.serve("/to-file", vec![Reply::Redirect("file:///etc/passwd".into())]);
    sc.pin("m", "m.bin", b"x", &["/to-file"]);
    let run = sc.models(&args_with(&["fetch"], FAST));
    run.expect(1);
    assert!(run.stderr.contains("only http and https are followed"), "{}", run.stderr);
    assert!(!run.stderr.contains("fix it in models.toml"), "{}", run.stderr);

    // A file: URL naming a folder.
    let sb = sandbox();
    sb.write_manifest(&[Pin::new("m", "m.bin", b"x", &[format!("file://{}", sb.dir.display())])]);
    let run = sb.models(&["fetch"]);
    run.expect(1);
    assert!(run.stderr.contains("is a folder, not a file"), "{}", run.stderr);

    // Invalid UTF-8 in the manifest, at its place.
    let sb = sandbox();
    std::fs::write(&sb.manifest, b"# fine\n# also fine \xff here\n").unwrap();
    let run = sb.models(&["verify", "--manifest-only"]);
    run.expect(2);
    assert!(run.stderr.contains("models.toml:2:13:") && run.stderr.contains("UTF-8"), "{}", run.stderr);

    // One file name that is not UTF-8 does not stop `clean`.
    let sb = sandbox();
    sb.write_manifest(&[Pin::new("w", "w.bin", b"x", &["http://127.0.0.1:9/w".to_owned()])]);
    std::fs::create_dir_all(&sb.checkpoints).unwrap();
    use std::os::unix::ffi::OsStrExt;
    std::fs::write(sb.checkpoints.join(std::ffi::OsStr::from_bytes(b"bad-\xff.bin")), b"x").unwrap();
    std::fs::write(sb.checkpoints.join("w.bin.0123456789ab.part"), b"x").unwrap();
    let run = sb.models(&["clean"]);
    run.expect(0);
    assert!(run.stdout.contains("removed 1 file(s)"), "{}", run.stdout);
}
