//! Real-host behaviour on loopback: Drive interstitials, X-Linked pins, credentials,
//! redirects, proxies and certificates.

use tests::tls::{Pki, TlsServer};
use tests::{Pin, Reply, Server, payload, sha256_hex};

use crate::one_model;
use crate::{FAST, args_with, sandbox, scenario};

fn fetch(sb: &tests::Sandbox, extra: &[&str]) -> tests::Run {
    let mut args = vec!["fetch"];
    args.extend_from_slice(FAST);
    args.extend_from_slice(extra);
    sb.models(&args)
}

#[test]
fn drive_virus_scan_forms_are_followed_with_their_cookies() {
    let sc = scenario();
    let server = &sc.server;
    let data = payload(40_000, 300);
    let form = format!(
        r#"<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>
        <form id="download-form" action="{}" method="get">
        <input type="hidden" name="id" value="ABC"><input type="hidden" name="confirm" value="t">
        <input type="submit" value="Download anyway"></form></body></html>"#,
        server.url("/download")
    );
    let cookie = ("Set-Cookie".to_owned(), "download_warning_ABC=tok; Path=/; HttpOnly".to_owned());
    server.script("/uc?export=download&id=ABC", vec![Reply::HtmlWith { page: form, headers: vec![cookie] }]);
    server.script("/download?id=ABC&confirm=t", vec![Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &[&server.url("/uc?export=download&id=ABC")]);
    fetch(&sc, &[]).expect(0);
    assert_eq!(std::fs::read(sc.file("m.bin")).unwrap(), *data);
    let follow = server.gets().into_iter().find(|r| r.path.starts_with("/download")).unwrap();
    assert_eq!(follow.cookie.as_deref(), Some("download_warning_ABC=tok"));
}

#[test]
fn drive_legacy_confirm_links_and_download_urls_are_followed() {
    let server = Server::start();
    let data = payload(40_000, 301);
    let legacy = r#"<html><body><a id="uc-download-link" href="/uc?export=download&amp;confirm=Zx9&amp;id=ABC">Download anyway</a></body></html>"#;
    server.script("/uc?export=download&id=ABC", vec![Reply::Html(legacy.into())]);
    server.script("/uc?export=download&confirm=Zx9&id=ABC", vec![Reply::Body(data.clone())]);
    let sb = one_model(server.url("/uc?export=download&id=ABC"), &data);
    fetch(&sb, &[]).expect(0);

    let server2 = Server::start();
    let escaped = server2.url("/dl?id\\u003dXYZ\\u0026confirm\\u003dt").replace('/', "\\/");
    let script =
        format!(r#"<html><script>window.viewerData = {{"downloadUrl":"{escaped}"}};</script></html>"#);
    server2.script("/page", vec![Reply::Html(script)]);
    server2.script("/dl?id=XYZ&confirm=t", vec![Reply::Body(data.clone())]);
    let sb = one_model(server2.url("/page"), &data);
    fetch(&sb, &["--no-cache"]).expect(0);
}

#[test]
fn a_drive_quota_page_is_refused_with_its_message_and_what_to_do() {
    let sc = scenario();
    let server = &sc.server;
    let page = r#"<html><body><div class="uc-main"><p class="uc-error-caption">Sorry, you can't view or download this file at this time.</p>
        <p class="uc-error-subcaption">Too many users have viewed or downloaded this file recently. Please try accessing the file again later.</p></div></body></html>"#;
    server.script("/uc?id=Q", vec![Reply::Html(page.into())]);
    sc.pin("m", "m.bin", &payload(10, 302), &[&server.url("/uc?id=Q")]);
    let run = fetch(&sc, &[]);
    run.expect(1);
    assert!(
        run.stderr.contains("Too many users have viewed or downloaded this file recently"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Anyone with the link"), "{}", run.stderr);
    assert!(run.stderr.contains("(rate-limited)"), "{}", run.stderr);
}

#[test]
fn a_stale_pin_is_found_by_a_head_before_any_download() {
    let sc = scenario();
    let server = &sc.server;
    let data = payload(5000, 303);
    let path = "/org/repo/resolve/main/m.bin";
    let stale = Reply::Status {
        code: 302,
        headers: vec![
            ("Location".into(), server.url("/cdn/m.bin")),
            ("X-Linked-Size".into(), "5001".into()),
            ("X-Linked-Etag".into(), format!("\"{}\"", "c".repeat(64))),
        ],
        body: String::new(),
    };
    server.script(path, vec![stale]);
    server.script("/cdn/m.bin", vec![Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &[&server.url(path)]);
    let run = fetch(&sc, &[]);
    run.expect(1);
    assert!(run.stderr.contains("the pin is stale: upstream now has size 5001"), "{}", run.stderr);
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].method, "HEAD");
    assert!(server.gets().is_empty(), "no GET was made");
}

#[test]
fn matching_linked_headers_let_the_download_through_the_redirect() {
    let sc = scenario();
    let server = &sc.server;
    let data = payload(5000, 304);
    let path = "/org/repo/resolve/main/m.bin";
    let fresh = Reply::Status {
        code: 302,
        headers: vec![
            ("Location".into(), server.url("/cdn/m.bin")),
            ("X-Linked-Size".into(), "5000".into()),
            ("X-Linked-Etag".into(), format!("\"{}\"", sha256_hex(&data))),
        ],
        body: String::new(),
    };
    server.script(path, vec![fresh]);
    server.script("/cdn/m.bin", vec![Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &[&server.url(path)]);
    fetch(&sc, &[]).expect(0);
    assert_eq!(std::fs::read(sc.file("m.bin")).unwrap(), *data);
}

#[test]
fn netrc_credentials_reach_their_host_but_not_a_cross_host_redirect() {
    let mut sc = scenario();
    let data = payload(3000, 305);
    // 127.0.0.1 and localhost are two hosts to a client, though one server here.
    sc.server.script("/private/m.bin", vec![Reply::Redirect(sc.server.url_as_localhost("/cdn/m.bin"))]);
    sc.server.script("/cdn/m.bin", vec![Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &[&sc.server.url("/private/m.bin")]);
    let netrc = sc.dir.join("netrc");
    std::fs::write(&netrc, "machine 127.0.0.1 login alice password s3cret\n").unwrap();
    sc.set_env("NETRC", &netrc.display().to_string());
    let log = sc.dir.join("fetch.log");
    let log_arg = log.display().to_string();
    fetch(&sc, &["--log-file", &log_arg]).expect(0);
    let requests = sc.server.gets();
    assert_eq!(requests[0].authorization.as_deref(), Some("Basic YWxpY2U6czNjcmV0"), "alice:s3cret");
    assert_eq!(requests[1].authorization, None, "dropped at the host change");
    let text = std::fs::read_to_string(log).unwrap();
    assert!(!text.contains("s3cret") && !text.contains("YWxpY2U6czNjcmV0"), "{text}");
}

#[test]
fn a_redirect_loop_is_named_and_bounded() {
    let sc = scenario();
    let server = &sc.server;
    for i in 0..12 {
        server.script(&format!("/hop{i}"), vec![Reply::Redirect(server.url(&format!("/hop{}", i + 1)))]);
    }
    sc.pin("m", "m.bin", &payload(10, 306), &[&server.url("/hop0")]);
    let run = fetch(&sc, &[]);
    run.expect(1);
    assert!(run.stderr.contains("more than 10 redirects"), "{}", run.stderr);
    assert_eq!(server.requests().len(), 11, "the first request and ten redirects");
}

#[test]
fn an_http_url_goes_through_a_forward_proxy_in_absolute_form_not_as_a_tunnel() {
    // Stock squid and tinyproxy refuse CONNECT to port 80: an http URL must reach the
    // proxy as `GET http://host/path`, as curl sends it. This proxy plays the origin.
    let proxy = Server::start();
    let data = payload(2000, 307);
    proxy.script("http://models.invalid/m.bin", vec![Reply::Body(data.clone())]);
    let mut sb = one_model("http://models.invalid/m.bin".into(), &data);
    sb.set_env("http_proxy", &proxy.url(""));
    fetch(&sb, &[]).expect(0);
    assert_eq!(std::fs::read(sb.file("m.bin")).unwrap(), *data);
    let seen: Vec<(String, String)> = proxy.requests().into_iter().map(|r| (r.method, r.path)).collect();
    assert_eq!(seen, [("GET".into(), "http://models.invalid/m.bin".into())]);
}

#[test]
fn no_proxy_bypasses_the_proxy_and_a_dead_proxy_is_named() {
    let mut sc = scenario();
    let data = payload(2000, 308);
    sc.server.script("/m.bin", vec![Reply::Body(data.clone())]);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    sc.pin("m", "m.bin", &data, &[&sc.server.url("/m.bin")]);
    sc.set_env("http_proxy", &format!("http://127.0.0.1:{dead}"));
    sc.set_env("NO_PROXY", "example.invalid,127.0.0.1");
    fetch(&sc, &[]).expect(0);

    let mut sb = one_model("http://models.invalid/m.bin".into(), &data);
    sb.set_env("http_proxy", &format!("http://127.0.0.1:{dead}"));
    let run = fetch(&sb, &["--retries", "0"]);
    run.expect(1);
    assert!(run.stderr.contains(&format!("through the proxy http://127.0.0.1:{dead}")), "{}", run.stderr);
}

fn hello(path: &str) -> Vec<u8> {
    match path {
        "/to-http" => b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/m.bin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
        _ => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".to_vec(),
    }
}

#[test]
fn a_private_ca_is_rejected_by_default_and_trusted_with_ssl_cert_file() {
    let sb = sandbox();
    let pki = Pki::create(&sb.dir.join("pki"));
    let server = TlsServer::start(&pki, hello);
    let url = format!("https://localhost:{}/m.bin", server.port);
    let mut sb = one_model(url, b"hello");
    let run = fetch(&sb, &["--retries", "0"]);
    run.expect(1);
    assert!(run.stderr.contains("(tls)"), "{}", run.stderr);
    assert!(run.stderr.contains("SSL_CERT_FILE"), "the hint names the variable: {}", run.stderr);
    assert!(server.paths().is_empty());

    sb.set_env("SSL_CERT_FILE", &pki.ca_pem.display().to_string());
    fetch(&sb, &[]).expect(0);
    assert_eq!(std::fs::read(sb.file("m.bin")).unwrap(), b"hello");

    // A folder of CA certificates works the same way.
    let mut sb = one_model(format!("https://localhost:{}/m.bin", server.port), b"hello");
    let certs = sb.dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(&pki.ca_pem, certs.join("corporate-ca.pem")).unwrap();
    sb.set_env("SSL_CERT_DIR", &certs.display().to_string());
    fetch(&sb, &[]).expect(0);

    // And the AWS CLI's variable, for an object store behind a private CA.
    let mut sb = one_model(format!("https://localhost:{}/m.bin", server.port), b"hello");
    sb.set_env("AWS_CA_BUNDLE", &pki.ca_pem.display().to_string());
    fetch(&sb, &[]).expect(0);
}

#[test]
fn an_https_to_http_redirect_is_refused() {
    let sb = sandbox();
    let pki = Pki::create(&sb.dir.join("pki"));
    let server = TlsServer::start(&pki, hello);
    let mut sb = one_model(format!("https://127.0.0.1:{}/to-http", server.port), b"hello");
    sb.set_env("SSL_CERT_FILE", &pki.ca_pem.display().to_string());
    let run = fetch(&sb, &[]);
    run.expect(1);
    assert!(run.stderr.contains("to plain http"), "{}", run.stderr);
    assert!(run.stderr.contains("(insecure-redirect)"), "{}", run.stderr);
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
fn a_socks_proxy_is_refused_by_name_never_a_panic() {
    // A listener the test holds: nothing is ever asked of it.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let data = payload(2000, 309);
    for (variable, url) in
        [("ALL_PROXY", "https://models.invalid/m.bin"), ("http_proxy", "http://models.invalid/m.bin")]
    {
        let mut sb = one_model(url.into(), &data);
        sb.set_env(variable, &format!("socks5h://127.0.0.1:{port}"));
        sb.set_env("NO_PROXY", "");
        let run = fetch(&sb, &["--retries", "0"]);
        run.expect(1);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        assert!(
            run.stderr.contains("is a SOCKS proxy, which this tool does not speak"),
            "{variable}: {}",
            run.stderr
        );
    }
    drop(held);
}
