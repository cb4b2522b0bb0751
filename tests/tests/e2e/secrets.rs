//! Secrets (tokens, passwords, signed queries) never reach stderr, JSON, the log or a
//! file, and credentials go only to the host they are for. Found by hostile rounds: each test is named for
//! the promise it keeps, and each failed before its fix.

use std::time::Duration;

use tests::tls::{Pki, TlsServer};
use tests::{Pin, Reply, Server, payload};

use crate::{FAST, args_with, sandbox, scenario};

/// A query key for each mark the tool redacts by (its own list, so a new mark is tested
/// the day it is added), and the spellings real hosts use.
fn secret_keys() -> Vec<String> {
    let marked = xtask::source::SECRET_MARKS.iter().map(|mark| format!("X-{mark}-v"));
    let real =
        ["X-Goog-Signature", "X-Amz-Credential", "private_token", "client_secret", "hf_token", "Policy"];
    marked.chain(real.iter().map(|k| (*k).to_owned())).chain(["%74oken".to_owned()]).collect()
}
#[test]
fn secret_query_values_and_userinfo_never_reach_stderr_json_or_the_log() {
    let sc = scenario();
    for (i, key) in secret_keys().iter().enumerate() {
        let path = format!("/s{i}?{key}=SECRET{i}&expires=1700000000");
        sc.serve(&path, vec![Reply::status(403)]);
        let url = sc.url(&path).replace("http://", "http://alice:PW@");
        sc.add(Pin::new(&format!("m{i}"), &format!("m{i}.bin"), &payload(10, i as u64), &[url]));
    }
    let log = sc.dir.join("fetch.log");
    // --verbose: every source given up on, and every block, goes to stderr too.
    let run = sc.models(&["fetch", "--json", "--verbose", "--log-file", log.to_str().unwrap()]);
    run.expect(1);
    let log = std::fs::read_to_string(&log).unwrap();
    for (channel, text) in [("stderr", &run.stderr), ("json", &run.stdout), ("log", &log)] {
        for needle in ["SECRET", "PW", "1700000000"] {
            assert!(!text.contains(needle), "{needle} in {channel}:\n{text}");
        }
        assert!(text.contains("***"), "{channel} shows where a secret was: {text}");
    }
}

#[test]
fn userinfo_never_reaches_manifest_proxy_or_mirror_errors() {
    let sb = sandbox();
    let bad = Pin::new("m", "m.bin", b"x", &["https://alice:PW@example.invalid/a b".into()]);
    sb.write_manifest(&[bad]);
    let run = sb.models(&["verify", "--manifest-only"]);
    run.expect(2);
    assert!(!run.output().contains("PW") && run.output().contains("***@"), "{}", run.output());

    let mut sb = sandbox();
    sb.write_manifest(&[Pin::new("m", "m.bin", b"x", &["https://example.invalid/m".into()])]);
    let run = sb.models(&["fetch", "--mirror", "ftp://alice:PW@mirror.invalid/"]);
    run.expect(2);
    assert!(!run.output().contains("PW"), "{}", run.output());
    sb.set_env("XTASK_MODELS_MIRRORS", "ftp://alice:PW@mirror.invalid/");
    let run = sb.models(&["fetch"]);
    run.expect(2);
    assert!(!run.output().contains("PW"), "{}", run.output());

    let mut sb = sandbox();
    sb.write_manifest(&[Pin::new("m", "m.bin", b"x", &["https://example.invalid/m".into()])]);
    sb.set_env("HTTPS_PROXY", "socks9://alice:PW@proxy.invalid:1");
    let run = sb.models(&["fetch", "--retries", "0"]);
    run.expect(1);
    assert!(!run.output().contains("PW") && run.output().contains("proxy"), "{}", run.output());
}

#[test]
fn netrc_default_credentials_stay_on_the_host_the_manifest_names() {
    let mut sc = scenario();
    let data = payload(3000, 510);
    let cdn = sc.server.url_as_localhost("/cdn/m.bin");
    sc.serve("/private/m.bin", vec![Reply::Redirect(cdn)]);
    sc.serve("/cdn/m.bin", vec![Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &["/private/m.bin"]);
    let netrc = sc.dir.join("netrc-default");
    std::fs::write(&netrc, "default login anon password guest\n").unwrap();
    sc.set_env("NETRC", netrc.to_str().unwrap());
    sc.models(&["fetch"]).expect(0);
    let gets = sc.server.gets();
    assert_eq!(
        gets[0].authorization.as_deref(),
        Some("Basic YW5vbjpndWVzdA=="),
        "anon:guest to the named host"
    );
    assert_eq!(gets[1].authorization, None, "not to the host a redirect leads to");
}

fn form_to_plain_http(_path: &str) -> Vec<u8> {
    let page = r#"<!DOCTYPE html><html><head><title>Virus scan warning</title></head><body>
        <form id="download-form" action="http://127.0.0.1:9/download" method="get">
        <input type="hidden" name="id" value="X"><input type="submit" value="Download anyway"></form></body></html>"#;
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
        page.len()
    )
    .into_bytes()
}

#[test]
fn an_https_page_whose_form_points_at_plain_http_is_refused_like_a_redirect() {
    let mut sb = sandbox();
    let pki = Pki::create(&sb.dir.join("pki"));
    let server = TlsServer::start(&pki, form_to_plain_http);
    let url = format!("https://127.0.0.1:{}/uc?export=download&id=X", server.port);
    sb.write_manifest(&[Pin::new("m", "m.bin", &payload(10, 511), &[url])]);
    sb.set_env("SSL_CERT_FILE", pki.ca_pem.to_str().unwrap());
    let run = sb.models(&args_with(&["fetch"], FAST));
    run.expect(1);
    assert!(
        run.stderr.contains("(insecure-redirect)") && run.stderr.contains("to plain http"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_manifest_name_with_shell_syntax_is_one_quoted_word_in_the_hook() {
    let sb = sandbox();
    let git = |args: &[&str]| tests::git(&sb.dir, args);
    assert!(git(&["init", "-q"]).status.success());
    let manifest = sb.dir.join("m'$(touch PWNED)'.toml");
    std::fs::write(&manifest, "# nothing pinned yet\n").unwrap();
    let install = ["models", "hook", "install", "--manifest", manifest.to_str().unwrap()];
    let install: Vec<String> = install.iter().map(|a| a.to_string()).collect();
    sb.run_raw(&install).expect(0);
    assert!(git(&["add", "-A"]).status.success());
    let commit = git(&["commit", "-q", "-m", "x"]);
    assert!(commit.status.success(), "{}", String::from_utf8_lossy(&commit.stderr));
    assert!(!sb.dir.join("PWNED").exists(), "a file name is never run as code");
}

#[test]
fn server_words_reach_the_terminal_and_the_log_cleaned_and_bounded() {
    // An S3 error's <Code> used to reach stderr and the log raw: a window title, a clear
    // screen, and 5,000 characters. Here the "store" is this test's own server.
    let mut sc = scenario();
    let hostile = format!("\u{1b}]0;pwned\u{7}\u{1b}[2J{}", "X".repeat(5000));
    let body =
        format!("<?xml version=\"1.0\"?><Error><Code>{hostile}</Code><Message>{hostile}</Message></Error>");
    let data = payload(1000, 550);
    let hex = tests::sha256_hex(&data);
    sc.serve(&format!("/models/team/sha256/{hex}"), vec![Reply::Status { code: 403, headers: vec![], body }]);
    sc.serve("/m", vec![Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &["/m"]);
    let endpoint = sc.server.url("");
    sc.set_env("AWS_ENDPOINT_URL", &endpoint);
    sc.set_env("AWS_ACCESS_KEY_ID", "AKIDTEST");
    sc.set_env("AWS_SECRET_ACCESS_KEY", "test-secret");
    let log = sc.dir.join("fetch.log");
    let run = sc.models(&[
        "fetch",
        "--verbose",
        "--mirror",
        "s3://models/team",
        "--log-file",
        log.to_str().unwrap(),
    ]);
    run.expect(0);
    let log = std::fs::read_to_string(&log).unwrap();
    for (channel, text) in [("stderr", &run.stderr), ("log", &log)] {
        assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'), "no escapes in {channel}: {text:?}");
        assert!(!text.contains(&"X".repeat(300)), "bounded in {channel}");
    }
    assert!(run.stderr.contains("XXXX"), "yet shown: {}", run.stderr);
}

#[test]
fn netrc_default_credentials_stay_off_the_same_host_on_another_port() {
    let mut sc = scenario();
    let data = payload(3000, 511);
    // The same host name, another port: another origin (curl's CVE-2022-27776).
    let other = Server::start();
    other.script("/m.bin", vec![Reply::Body(data.clone())]);
    sc.serve("/private/m.bin", vec![Reply::Redirect(other.url("/m.bin"))]);
    sc.pin("m", "m.bin", &data, &["/private/m.bin"]);
    let netrc = sc.dir.join("netrc-default");
    std::fs::write(&netrc, "default login anon password guest\n").unwrap();
    sc.set_env("NETRC", netrc.to_str().unwrap());
    sc.models(&["fetch"]).expect(0);
    assert_eq!(sc.server.gets()[0].authorization.as_deref(), Some("Basic YW5vbjpndWVzdA=="));
    let there = other.gets();
    assert_eq!(there.len(), 1);
    assert_eq!(there[0].authorization, None, "not to {}", other.url("/"));
}

#[test]
fn a_netrc_or_token_that_is_a_device_or_a_fifo_is_ignored_without_waiting() {
    for netrc in ["/dev/zero", "fifo"] {
        let mut sc = scenario();
        let data = payload(2000, 512);
        sc.serve("/m.bin", vec![Reply::Body(data.clone())]);
        sc.pin("m", "m.bin", &data, &["/m.bin"]);
        let path = if netrc == "fifo" {
            let path = sc.dir.join("netrc-fifo");
            assert!(std::process::Command::new("mkfifo").arg(&path).status().unwrap().success());
            path.display().to_string()
        } else {
            netrc.to_owned()
        };
        sc.set_env("NETRC", &path);
        sc.set_env("HF_TOKEN_PATH", &path);
        let run = sc.spawn_logged(&["fetch"]).finish_within(Duration::from_secs(120), "fetch");
        run.expect(0);
        assert_eq!(sc.server.gets()[0].authorization, None, "{netrc}");
    }
}
