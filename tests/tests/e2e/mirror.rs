//! Mirrors: tried before a model's own URLs, and an exported mirror serves a checkout
//! whose origin is down.

use tests::{Reply, Server, payload, sha256_hex};

use crate::three_models;
use crate::{sandbox, scenario};

#[test]
fn mirrors_are_tried_before_the_models_own_urls() {
    let origin = Server::start();
    let mirror = Server::start();
    let pins = three_models(&origin);
    let data = payload(200_000, 40);
    mirror.script(&format!("/pool/sha256/{}", pins[0].sha256), vec![Reply::Body(data)]);
    let sb = sandbox();
    sb.write_manifest(&pins[..1]);
    sb.models(&["fetch", "--mirror", &mirror.url("/pool/")]).expect(0);
    assert_eq!(origin.hits("/m0"), 0);
    assert_eq!(mirror.requests().len(), 1);
}

#[test]
fn an_exported_mirror_serves_a_checkout_when_the_origin_is_down() {
    let origin = Server::start();
    let pins = three_models(&origin);
    let sb = sandbox();
    sb.write_manifest(&pins);
    sb.models(&["fetch"]).expect(0);
    let dir = sb.dir.join("mirror");
    let dir_arg = dir.display().to_string();
    let run = sb.models(&["mirror", &dir_arg]);
    run.expect(0);
    assert!(run.stdout.contains("exported 3 of 3"), "{}", run.stdout);
    drop(origin);

    let mut other = sandbox();
    other.write_manifest(&pins);
    other.set_env("XTASK_MODELS_MIRRORS", &dir_arg);
    let run = other.models(&["fetch"]);
    run.expect(0);
    assert!(run.stdout.contains("fetched 3"), "{}", run.stdout);
    other.models(&["verify"]).expect(0);
}

#[test]
fn a_mirror_made_by_hard_links_leaves_the_stamps_valid() {
    // A hard link moves the shared inode's ctime and link count; the tool's own links are
    // recorded, so verify stays instant after `mirror DIR` on the same filesystem.
    for fetch in [&["fetch"][..], &["fetch", "--no-cache"][..]] {
        let sc = scenario();
        let data = sc.model("m", "m.bin", payload(50_000, 530));
        sc.models(fetch).expect(0);
        let dir = sc.dir.join("mirror");
        let run = sc.models(&["mirror", dir.to_str().unwrap()]);
        run.expect(0);
        assert!(run.stdout.contains("(hard-link)"), "{}", run.stdout);
        let verify = sc.models(&["verify", "--json"]);
        verify.expect(0);
        let doc: serde_json::Value = serde_json::from_str(verify.stdout.trim()).unwrap();
        assert_eq!(doc["models"][0]["state"], "ok-stamped", "{fetch:?}: {}", verify.stdout);
        assert_eq!(std::fs::read(dir.join("sha256").join(sha256_hex(&data))).unwrap(), *data);
    }
}
