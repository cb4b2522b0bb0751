//! An S3-compatible store as the fleet's shared mirror, against a real engine: SeaweedFS
//! (`weed mini`), started per test on loopback ports. Publish, then fetch into a fresh
//! checkout whose own URLs are dead; resume from the bucket after a kill; every wrong
//! setting has its own message; secrets never show.

use std::path::Path;
use std::time::Duration;

use tests::daemons::{Moto, Seaweed};
use tests::{Scenario, payload, sha256_hex, wait_until};

use crate::{FAST, scenario};

/// Large enough for a multipart upload (64 MiB) and a split download (32 MiB).
const BIG: usize = 72 << 20;
const SMALL: usize = 1 << 20;

/// A scenario with a small and a big model served by the loopback server, and a store.
fn setup(test: &str) -> Option<(Scenario, Seaweed, Vec<u8>, Vec<u8>)> {
    let sc = scenario();
    let weed = Seaweed::start(&sc.dir.join("weed"), test)?;
    let small = sc.model("small", "small.bin", payload(SMALL, 901)).to_vec();
    let big = sc.model("big", "big.bin", payload(BIG, 902)).to_vec();
    Some((sc, weed, small, big))
}

/// Points `sc`'s runs at `weed` with working credentials.
fn use_store(sc: &mut Scenario, weed: &Seaweed) {
    for (name, value) in weed.env() {
        sc.set_env(name, &value);
    }
}

/// The same manifest in a fresh checkout with no cache, whose own URLs are all dead.
fn fresh_checkout(sc: &Scenario, weed: &Seaweed) -> Scenario {
    let mut other = scenario();
    // Held for the whole run: nobody can start a server there while a test uses it.
    static DEAD: std::sync::OnceLock<tests::daemons::DeadPort> = std::sync::OnceLock::new();
    let dead = DEAD.get_or_init(tests::daemons::DeadPort::hold).url();
    let text = std::fs::read_to_string(&sc.manifest).unwrap().replace(&sc.server.url(""), &dead);
    std::fs::write(&other.manifest, text).unwrap();
    use_store(&mut other, weed);
    other
}

fn publish(sc: &Scenario, prefix: &str) -> tests::Run {
    sc.models(&["mirror", &format!("s3://{}/{prefix}", Seaweed::BUCKET), "--all"])
}

fn assert_no_secret(weed: &Seaweed, texts: &[&str]) {
    for text in texts {
        assert!(!text.contains(&weed.secret_key), "the secret key leaked: {text}");
        assert!(!text.contains("X-Amz-Signature"), "a signed URL leaked: {text}");
        assert!(!text.contains("X-Amz-Credential"), "a signed URL leaked: {text}");
    }
}

#[test]
fn published_models_are_fetched_from_the_bucket_when_their_own_urls_are_dead() {
    let Some((mut sc, weed, small, big)) = setup("published_models_are_fetched_from_the_bucket") else {
        return;
    };
    use_store(&mut sc, &weed);
    sc.models(&["fetch", "--no-cache"]).expect(0);
    let run = publish(&sc, "team");
    run.expect(0);
    assert!(
        run.stdout.contains("small: s3://models/team/sha256/") && run.stdout.contains(" uploaded\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("uploaded in 5 parts"), "72 MiB goes up in 16 MiB parts: {}", run.stdout);
    let again = publish(&sc, "team");
    again.expect(0);
    assert_eq!(
        again.stdout.matches("already there with the right size and sha256; skipped").count(),
        2,
        "{}",
        again.stdout
    );

    let forced = sc.models(&["mirror", "s3://models/team", "--model", "small", "--force"]);
    forced.expect(0);
    assert!(forced.stdout.contains(" uploaded\n"), "--force uploads again: {}", forced.stdout);

    let fresh = fresh_checkout(&sc, &weed);
    let log = fresh.dir.join("attempts.log");
    let fetched = fresh.models(&[
        "fetch",
        "--no-cache",
        "--json",
        "--mirror",
        "s3://models/team",
        "--log-file",
        log.to_str().unwrap(),
    ]);
    fetched.expect(0);
    assert_eq!(std::fs::read(fresh.file("small.bin")).unwrap(), small);
    assert_eq!(std::fs::read(fresh.file("big.bin")).unwrap(), big);
    let json: serde_json::Value = serde_json::from_str(&fetched.stdout).unwrap();
    let urls: Vec<&str> =
        json["models"].as_array().unwrap().iter().filter_map(|m| m["url"].as_str()).collect();
    assert_eq!(urls.len(), 2, "{json}");
    assert!(
        urls.iter().all(|u| u.starts_with("s3://models/team/sha256/")),
        "named by bucket and key: {urls:?}"
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains(" range="), "the big one came in pieces: {log}");
    assert_no_secret(&weed, &[&run.stdout, &run.stderr, &fetched.stdout, &fetched.stderr, &log]);
}

#[test]
fn a_fetch_killed_midway_resumes_from_the_bucket() {
    let Some((mut sc, weed, _, big)) = setup("a_fetch_killed_midway_resumes_from_the_bucket") else { return };
    use_store(&mut sc, &weed);
    sc.models(&["fetch", "--no-cache"]).expect(0);
    publish(&sc, "team").expect(0);
    let fresh = fresh_checkout(&sc, &weed);
    let mirror = ["--mirror", "s3://models/team", "--no-cache", "--model", "big"];
    let mut args = vec!["fetch", "--limit-rate", "12M"];
    args.extend(mirror);
    let sidecar = fresh.file(&format!("big.bin.{}.part-ranges", &sha256_hex(&big)[..12]));
    let mut child = fresh.spawn_models(&args);
    wait_until(Duration::from_secs(60), "16 MiB recorded", || {
        std::fs::read_to_string(&sidecar).is_ok_and(|t| tests::pieces_done(&t) >= 16 << 20)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let mut args = vec!["fetch", "--json"];
    args.extend(mirror);
    args.extend(FAST);
    let run = fresh.models(&args);
    run.expect(0);
    assert_eq!(std::fs::read(fresh.file("big.bin")).unwrap(), big);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let bytes = json["summary"]["bytes"].as_u64().unwrap();
    assert!(bytes <= (BIG - (16 << 20)) as u64, "only what was missing came again: {bytes}\n{}", run.stderr);
}

#[test]
fn a_wrong_secret_an_unknown_key_and_a_missing_bucket_each_say_what_to_fix() {
    let Some((mut sc, weed, _, _)) = setup("a_wrong_secret_an_unknown_key_and_a_missing_bucket") else {
        return;
    };
    use_store(&mut sc, &weed);
    sc.models(&["fetch", "--no-cache"]).expect(0);
    publish(&sc, "team").expect(0);
    let cases: [(&str, &str, &str, &str); 3] = [
        ("AWS_SECRET_ACCESS_KEY", "not-the-secret", "s3://models/team", "s3-bad-secret"),
        ("AWS_ACCESS_KEY_ID", "AKIDNOBODYKNOWS", "s3://models/team", "s3-unknown-key"),
        ("AWS_REGION", "us-east-1", "s3://no-such-bucket/team", "s3-no-such-bucket"),
    ];
    for (name, value, mirror, class) in cases {
        let mut fresh = fresh_checkout(&sc, &weed);
        fresh.set_env(name, value);
        let run =
            fresh.models(&["fetch", "--no-cache", "--mirror", mirror, "--model", "small", "--retries", "0"]);
        run.expect(1);
        assert!(run.stderr.contains(class), "{class}: {}", run.stderr);
        assert_no_secret(&weed, &[&run.stdout, &run.stderr]);
    }
    // Publishing with a wrong secret says the same.
    sc.set_env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let run = sc.models(&["mirror", "s3://models/other", "--model", "small"]);
    run.expect(1);
    assert!(
        run.stderr.contains("s3-bad-secret") && run.stderr.contains("AWS_SECRET_ACCESS_KEY"),
        "{}",
        run.stderr
    );
    assert_no_secret(&weed, &[&run.stdout, &run.stderr]);
}

#[test]
fn an_object_of_the_wrong_size_is_skipped_and_named() {
    let Some((mut sc, weed, small, _)) = setup("an_object_of_the_wrong_size_is_skipped_and_named") else {
        return;
    };
    let Some(curl) = tests::daemons::require("curl", "an_object_of_the_wrong_size_is_skipped_and_named")
    else {
        return;
    };
    use_store(&mut sc, &weed);
    // Someone put other bytes at the small model's name.
    let key = format!("team/sha256/{}", sha256_hex(&small));
    let wrong = sc.dir.join("wrong.bin");
    std::fs::write(&wrong, vec![7u8; 1000]).unwrap();
    put_with_curl(&curl, &weed, &key, &wrong);
    let run = sc.models(&["fetch", "--no-cache", "--mirror", "s3://models/team", "--model", "small"]);
    run.expect(0);
    assert_eq!(std::fs::read(sc.file("small.bin")).unwrap(), small, "the model's own URL served it");
    // The warning about a source that failed for good names it, and what is wrong.
    let named =
        run.stderr.lines().find(|l| l.contains("because s3://models/team/sha256/")).unwrap_or_default();
    assert!(
        named.contains("offers 1000 bytes but the pin says 1048576 (size-mismatch)"),
        "the mirror is named with what is wrong: {}",
        run.stderr
    );
}

#[test]
fn credentials_come_from_a_profile_in_the_shared_files() {
    let Some((mut sc, weed, small, _)) = setup("credentials_come_from_a_profile_in_the_shared_files") else {
        return;
    };
    use_store(&mut sc, &weed);
    sc.models(&["fetch", "--no-cache", "--model", "small"]).expect(0);
    publish(&sc, "team").expect(1); // big is not present: only small is published
    let mut fresh = fresh_checkout(&sc, &weed);
    let credentials = fresh.dir.join("aws-credentials");
    let config = fresh.dir.join("aws-config");
    std::fs::write(
        &credentials,
        format!(
            "[default]\naws_access_key_id = WRONG\naws_secret_access_key = wrong\n\n[ci]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            weed.access_key, weed.secret_key
        ),
    )
    .unwrap();
    std::fs::write(
        &config,
        format!("[profile ci]\nregion = us-east-1\nendpoint_url = {}\n", weed.endpoint()),
    )
    .unwrap();
    for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_REGION"] {
        fresh.set_env(name, "");
    }
    fresh.set_env("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap());
    fresh.set_env("AWS_CONFIG_FILE", config.to_str().unwrap());
    fresh.set_env("AWS_PROFILE", "ci");
    fresh.models(&["fetch", "--no-cache", "--mirror", "s3://models/team", "--model", "small"]).expect(0);
    assert_eq!(std::fs::read(fresh.file("small.bin")).unwrap(), small);

    std::fs::remove_file(fresh.file("small.bin")).unwrap();
    fresh.set_env("AWS_PROFILE", "nope");
    let run = fresh.models(&["fetch", "--no-cache", "--mirror", "s3://models/team", "--model", "small"]);
    assert!(run.stderr.contains("AWS_PROFILE=nope"), "a missing profile is named: {}", run.stderr);
}

#[test]
fn a_public_prefix_is_read_anonymously_and_a_private_one_is_refused_with_a_reason() {
    let Some((mut sc, weed, small, _)) = setup("a_public_prefix_is_read_anonymously") else { return };
    use_store(&mut sc, &weed);
    sc.models(&["fetch", "--no-cache", "--model", "small"]).expect(0);
    sc.models(&["mirror", "s3://models/public/team", "--model", "small"]).expect(0);
    sc.models(&["mirror", "s3://models/private", "--model", "small"]).expect(0);
    let mut fresh = fresh_checkout(&sc, &weed);
    fresh.set_env("AWS_ACCESS_KEY_ID", "");
    fresh.set_env("AWS_SECRET_ACCESS_KEY", "");
    let args = ["fetch", "--no-cache", "--model", "small", "--retries", "0", "--mirror"];
    let mut public = args.to_vec();
    public.push("s3://models/public/team");
    fresh.models(&public).expect(0);
    assert_eq!(std::fs::read(fresh.file("small.bin")).unwrap(), small);
    std::fs::remove_file(fresh.file("small.bin")).unwrap();
    let mut private = args.to_vec();
    private.push("s3://models/private");
    let run = fresh.models(&private);
    run.expect(1);
    assert!(run.stderr.contains("s3-access-denied") && run.stderr.contains("anonymous"), "{}", run.stderr);
}

#[test]
fn a_killed_upload_is_continued_and_a_forgotten_one_restarted() {
    let Some((mut sc, weed, _, big)) = setup("a_killed_upload_is_continued") else { return };
    let Some(curl) = tests::daemons::require("curl", "a_killed_upload_is_continued") else { return };
    use_store(&mut sc, &weed);
    sc.models(&["fetch", "--no-cache", "--model", "big"]).expect(0);
    let records = sc.checkpoints.join(".uploads");
    let target = "s3://models/team";
    let mut child = sc.spawn_models(&slow_mirror(target));
    wait_until(Duration::from_secs(60), "an upload recorded", || upload_record(&records).is_some());
    let (_, upload_id) = upload_record(&records).unwrap();
    let key = format!("team/sha256/{}", sha256_hex(&big));
    wait_until(Duration::from_secs(60), "a part in the store", || {
        s3_get(&curl, &weed, &format!("{key}?uploadId={upload_id}")).matches("<PartNumber>").count() >= 1
    });
    child.kill().unwrap();
    child.wait().unwrap();
    sc.models(&["clean"]).expect(0);
    assert!(!dir_is_empty(&records), "clean leaves the record of an unfinished upload");
    let run = sc.models(&["mirror", target, "--model", "big"]);
    run.expect(0);
    assert!(run.stdout.contains("continuing an unfinished upload that had"), "{}", run.stdout);
    assert!(!run.stdout.contains("that had 0"), "some parts were there: {}", run.stdout);
    assert!(dir_is_empty(&records), "the record goes once the upload is complete");
    let fresh = fresh_checkout(&sc, &weed);
    fresh.models(&["fetch", "--no-cache", "--mirror", target, "--model", "big"]).expect(0);
    assert_eq!(std::fs::read(fresh.file("big.bin")).unwrap(), big);

    // An upload the store no longer knows (aborted by a lifecycle rule, say): start over.
    let mut child = sc.spawn_models(&slow_mirror("s3://models/second"));
    wait_until(Duration::from_secs(60), "an upload recorded", || upload_record(&records).is_some());
    child.kill().unwrap();
    child.wait().unwrap();
    let (record, upload_id) = upload_record(&records).unwrap();
    let text = std::fs::read_to_string(&record).unwrap();
    std::fs::write(&record, text.replace(&upload_id, "no-such-upload")).unwrap();
    let started = std::time::Instant::now();
    let run = sc.models(&["mirror", "s3://models/second", "--model", "big", "--limit-rate", "48M"]);
    run.expect(0);
    assert!(
        run.stdout.contains("restarted: the store no longer knew the unfinished upload"),
        "{}",
        run.stdout
    );
    // A lower bound only: a loaded machine can only be slower. 72 MiB at 48 MiB/s.
    assert!(started.elapsed() >= Duration::from_millis(1300), "--limit-rate holds: {:?}", started.elapsed());
}

#[test]
fn an_upload_that_fails_is_aborted_so_no_parts_are_left_behind() {
    let Some((mut sc, weed, _, big)) = setup("an_upload_that_fails_is_aborted") else { return };
    let Some(curl) = tests::daemons::require("curl", "an_upload_that_fails_is_aborted") else { return };
    use_store(&mut sc, &weed);
    sc.models(&["fetch", "--no-cache", "--model", "big"]).expect(0);
    let records = sc.checkpoints.join(".uploads");
    let child = sc.spawn_logged(&slow_mirror("s3://models/team"));
    wait_until(Duration::from_secs(60), "an upload recorded", || upload_record(&records).is_some());
    let (_, upload_id) = upload_record(&records).unwrap();
    // The file goes away under the upload: the next part cannot be read.
    std::fs::rename(sc.file("big.bin"), sc.dir.join("moved.bin")).unwrap();
    let run = child.finish();
    run.expect(1);
    assert!(run.stderr.contains("cannot publish big"), "{}", run.stderr);
    assert!(dir_is_empty(&records), "no record is left for a failed upload");
    let key = format!("team/sha256/{}?uploadId={upload_id}", sha256_hex(&big));
    let listed = s3_get(&curl, &weed, &key);
    assert!(listed.contains("NoSuchUpload"), "the store no longer has the upload or its parts: {listed}");
}

/// Publishes the big model to `target` one part at a time at 16 MiB/s: slow enough to
/// be caught midway.
fn slow_mirror(target: &str) -> [&str; 8] {
    ["mirror", target, "--model", "big", "--jobs", "1", "--limit-rate", "16M"]
}

/// The record of an unfinished upload, once it is complete on disk (it is written to a
/// temp file, then renamed): its path and the upload id on its last line.
fn upload_record(records: &Path) -> Option<(std::path::PathBuf, String)> {
    let entries = std::fs::read_dir(records).ok()?;
    let path = entries.flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "upload"))?;
    let text = std::fs::read_to_string(&path).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    (lines.len() == 5).then(|| (path, lines[4].to_owned()))
}

fn dir_is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}

/// What the store answers to a signed GET of `key` (with its query), by curl's SigV4.
fn s3_get(curl: &Path, weed: &Seaweed, key: &str) -> String {
    let out = std::process::Command::new(curl)
        .args(["-sS", "--aws-sigv4", "aws:amz:us-east-1:s3", "-u"])
        .arg(format!("{}:{}", weed.access_key, weed.secret_key))
        .arg(format!("{}/{}/{key}", weed.endpoint(), Seaweed::BUCKET))
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Puts `file` at `key` in the bucket with curl's own SigV4 (not the tool's).
fn put_with_curl(curl: &Path, weed: &Seaweed, key: &str, file: &Path) {
    let status = std::process::Command::new(curl)
        .args(["-sS", "--fail", "--aws-sigv4", "aws:amz:us-east-1:s3", "-u"])
        .arg(format!("{}:{}", weed.access_key, weed.secret_key))
        .arg("-T")
        .arg(file)
        .arg(format!("{}/{}/{key}", weed.endpoint(), Seaweed::BUCKET))
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .status()
        .unwrap();
    assert!(status.success(), "curl put the object");
}

#[test]
fn an_object_of_the_right_size_but_other_bytes_is_published_over_never_skipped() {
    // "Already there with the right size" used to be proof enough: a corrupt object of
    // the pinned size was skipped by every later publish. Now only an object that carries
    // the pin's sha256 (written by a publish) is skipped.
    let test = "an_object_of_the_right_size_but_other_bytes_is_published_over_never_skipped";
    let Some((mut sc, weed, small, _)) = setup(test) else { return };
    let Some(curl) = tests::daemons::require("curl", test) else { return };
    use_store(&mut sc, &weed);
    sc.models(&["fetch", "--no-cache"]).expect(0);
    let key = format!("team/sha256/{}", sha256_hex(&small));
    let wrong = sc.dir.join("wrong.bin");
    std::fs::write(&wrong, vec![7u8; small.len()]).unwrap();
    put_with_curl(&curl, &weed, &key, &wrong);
    let run = sc.models(&["mirror", "s3://models/team", "--model", "small"]);
    run.expect(0);
    assert!(run.stdout.contains(" uploaded\n"), "published over the unproven object: {}", run.stdout);
    let stored = sc.dir.join("stored.bin");
    let got = std::process::Command::new(&curl)
        .args(["-sS", "--fail", "--aws-sigv4", "aws:amz:us-east-1:s3", "-u"])
        .arg(format!("{}:{}", weed.access_key, weed.secret_key))
        .arg("-o")
        .arg(&stored)
        .arg(format!("{}/{}/{key}", weed.endpoint(), Seaweed::BUCKET))
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .status()
        .unwrap();
    assert!(got.success());
    assert_eq!(std::fs::read(&stored).unwrap(), small, "the store now holds the pinned bytes");
    let again = sc.models(&["mirror", "s3://models/team", "--model", "small"]);
    again.expect(0);
    assert!(again.stdout.contains("already there with the right size and sha256"), "{}", again.stdout);
}

#[test]
fn an_http_store_behind_stock_squid_is_sent_in_absolute_form_for_publish_and_fetch() {
    // An on-prem store on plain http used to go through CONNECT, which a stock squid
    // refuses for any port but 443: publish and fetch failed as proxy-refused.
    let test = "an_http_store_behind_stock_squid_is_sent_in_absolute_form_for_publish_and_fetch";
    let Some((mut sc, weed, small, _)) = setup(test) else { return };
    let Some(proxy) = tests::daemons::squid(&sc.dir.join("squid"), 443, None, test) else { return };
    use_store(&mut sc, &weed);
    sc.models(&["fetch", "--no-cache"]).expect(0);
    sc.set_env("http_proxy", &proxy.url(false));
    // The small model: one PUT, one GET. (Multipart through squid flaked under the
    // suite's load, the proxy closing a part's connection without an answer; see the
    // closing note of this change. Multipart is tested direct, and the request path is
    // the same.)
    let run = sc.models(&["mirror", "s3://models/proxied", "--model", "small"]);
    run.expect(0);
    assert!(!run.stderr.contains("proxy-refused"), "{}", run.stderr);
    let mut fresh = fresh_checkout(&sc, &weed);
    fresh.set_env("http_proxy", &proxy.url(false));
    fresh.models(&["fetch", "--no-cache", "--mirror", "s3://models/proxied", "--model", "small"]).expect(0);
    assert_eq!(std::fs::read(fresh.file("small.bin")).unwrap(), small);
    // squid writes its log as it goes; what it has written by now says how it was asked.
    let log = std::fs::read_to_string(sc.dir.join("squid/access.log")).unwrap_or_default();
    assert!(log.contains("PUT http://127.0.0.1:"), "uploads went through squid in absolute form:\n{log}");
    assert!(log.contains("GET http://127.0.0.1:"), "reads too:\n{log}");
    assert!(!log.contains("CONNECT"), "no tunnel:\n{log}");
}

#[test]
fn moto_takes_a_multipart_upload_and_serves_the_fetch() {
    // moto routes the multipart start only as S3 documents it (`POST …?uploads`): to
    // `?uploads=1` it answered 500 after making the upload, an orphan on every try. The
    // upload must start, go up in parts, complete, leave no upload open, and be fetched.
    let test = "moto_takes_a_multipart_upload_and_serves_the_fetch";
    let mut sc = scenario();
    let Some(moto) = Moto::start(&sc.dir.join("moto"), test) else { return };
    let big = sc.model("big", "big.bin", payload(BIG, 903)).to_vec();
    for (name, value) in moto.env() {
        sc.set_env(name, &value);
    }
    sc.models(&["fetch", "--no-cache"]).expect(0);
    let run = sc.models(&["mirror", &format!("s3://{}/team", Moto::BUCKET), "--all"]);
    run.expect(0);
    assert!(run.stdout.contains("uploaded in 5 parts"), "{}", run.stdout);
    let uploads = moto.get(&format!("/{}?uploads", Moto::BUCKET));
    assert!(uploads.contains("ListMultipartUploadsResult"), "the store lists its uploads: {uploads}");
    assert!(!uploads.contains("<UploadId>"), "no upload left open: {uploads}");
    // A checkout whose own URLs are dead gets the file from moto.
    let mut other = scenario();
    let dead = tests::daemons::DeadPort::hold();
    let text = std::fs::read_to_string(&sc.manifest).unwrap().replace(&sc.server.url(""), &dead.url());
    std::fs::write(&other.manifest, text).unwrap();
    for (name, value) in moto.env() {
        other.set_env(name, &value);
    }
    other.models(&["fetch", "--no-cache", "--mirror", &format!("s3://{}/team", Moto::BUCKET)]).expect(0);
    assert_eq!(std::fs::read(other.file("big.bin")).unwrap(), big);
}
