//! `--json`: every command's documents parse, say what the human output says, and keep
//! the documented shape.

use serde_json::Value;
use tests::{Pin, Reply, payload, sha256_hex};

use crate::stamped;
use crate::{sandbox, scenario};

#[test]
fn json_documents_parse_and_match_the_human_output() {
    let (sb, _) = stamped();
    let server = &sb.server;
    let extra = payload(2000, 80);
    server.script("/e", vec![Reply::Body(extra.clone())]);
    sb.write_manifest(&[
        Pin::new("m", "m.bin", &payload(100_000, 60), &[server.url("/m")]),
        Pin::new("e", "e.bin", &extra, &[server.url("/e")]),
        Pin::new("gone", "gone.bin", &payload(10, 81), &[server.url("/404")]),
    ]);
    let run = sb.models(&["fetch", "--json", "--backoff-ms", "1"]);
    run.expect(1);
    let doc: Value = serde_json::from_str(&run.stdout).expect("fetch --json is JSON");
    assert_eq!(doc["command"], "fetch");
    let states: Vec<&str> =
        doc["models"].as_array().unwrap().iter().map(|m| m["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["present", "fetched", "failed"]);
    let failed = &doc["models"][2];
    assert_eq!(failed["error"]["class"], "not-found");
    assert_eq!(failed["error"]["status"], 404);
    assert!(failed["error"]["hint"].as_str().unwrap().contains("outdated"));
    assert_eq!(doc["models"][1]["bytes"], 2000);
    assert_eq!(doc["models"][1]["attempts"], 1);
    assert_eq!(doc["summary"]["failed"], 1);
    assert!(run.stderr.contains("fetched 1"), "human summary moves to stderr: {}", run.stderr);

    let run = sb.models(&["verify", "--json"]);
    let doc: Value = serde_json::from_str(&run.stdout).expect("verify --json is JSON");
    assert_eq!(doc["summary"]["ok"], 2);
    assert_eq!(doc["models"][2]["state"], "missing");
    assert_eq!(doc["models"][0]["sha256"], sha256_hex(&payload(100_000, 60)));

    let run = sb.models(&["status", "--json"]);
    run.expect(0);
    let doc: Value = serde_json::from_str(&run.stdout).expect("status --json is JSON");
    assert_eq!(doc["models"][0]["state"], "ok-stamped");
    assert_eq!(doc["summary"]["bytes_needed"], 100_000 + 2000 + 10);
    assert_eq!(doc["summary"]["bytes_present"], 102_000);
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().expect("an object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// The README's contract for a model record: the common fields with their types, then
/// exactly the state's own fields.
fn assert_record(record: &Value, own: &[&str]) {
    assert!(record["name"].is_string() && record["path"].is_string() && record["sha256"].is_string());
    assert!(record["size"].is_u64() && (record["group"].is_string() || record["group"].is_null()));
    assert!(record["file"].as_str().is_some_and(|f| f.ends_with(record["path"].as_str().unwrap())));
    let mut expected = vec!["name", "path", "file", "group", "size", "sha256", "state"];
    expected.extend_from_slice(own);
    expected.sort_unstable();
    assert_eq!(keys(record), expected, "{record}");
}

#[test]
fn every_commands_json_has_the_documented_shape() {
    let sc = scenario();
    let present = sc.model("present", "present.bin", payload(3000, 400));
    sc.models(&["fetch"]).expect(0);
    let cached = payload(4000, 401);
    sc.serve("/cached", vec![Reply::Body(cached.clone())]);
    // Another checkout puts `cached` into the shared cache first.
    let other = sc.sibling();
    other.write_manifest(&[Pin::new("cached", "cached.bin", &cached, &[sc.url("/cached")])]);
    other.models(&["fetch"]).expect(0);
    sc.pin("cached", "cached.bin", &cached, &["/cached"]);
    sc.model("fetched", "fetched.bin", payload(5000, 402));
    sc.pin("failed", "failed.bin", &payload(10, 403), &["/404"]);

    let run = sc.models(&["fetch", "--json", "--backoff-ms", "1"]);
    run.expect(1);
    let doc: Value = serde_json::from_str(&run.stdout).expect("fetch --json is one JSON document");
    assert_eq!(keys(&doc), ["command", "models", "summary"]);
    assert_eq!(doc["command"], "fetch");
    let by_state =
        |state: &str| doc["models"].as_array().unwrap().iter().find(|m| m["state"] == state).cloned();
    assert_record(&by_state("present").unwrap(), &["checked"]);
    assert_record(&by_state("from-cache").unwrap(), &["placed_by"]);
    let fetched = by_state("fetched").unwrap();
    assert_record(&fetched, &["url", "attempts", "connections", "bytes", "seconds"]);
    assert!(fetched["url"].is_string() && fetched["attempts"].is_u64() && fetched["seconds"].is_f64());
    assert_eq!(fetched["connections"], 1, "a small file is one stream");
    let failed = by_state("failed").unwrap();
    assert_record(&failed, &["error", "tried"]);
    assert_eq!(keys(&failed["error"]), ["class", "hint", "message", "status"]);
    let tried = &failed["tried"][0];
    assert_eq!(keys(tried), ["error", "origin", "url"]);
    assert_eq!(tried["origin"], "url");
    assert_eq!(keys(&doc["summary"]), ["bytes", "failed", "fetched", "from_cache", "present", "seconds"]);
    assert_eq!(doc["summary"]["fetched"], 1);
    assert_eq!(doc["summary"]["from_cache"], 1);

    std::fs::write(sc.file("fetched.bin"), b"short").unwrap();
    let mut wrong = present.to_vec();
    wrong[0] ^= 1;
    std::fs::write(sc.file("present.bin"), wrong).unwrap();
    let run = sc.models(&["verify", "--json"]);
    run.expect(1);
    let doc: Value = serde_json::from_str(&run.stdout).expect("verify --json is one JSON document");
    assert_eq!(doc["command"], "verify");
    let states: Vec<&str> =
        doc["models"].as_array().unwrap().iter().map(|m| m["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["wrong-hash", "ok-stamped", "wrong-size", "missing"]);
    assert_record(&doc["models"][0], &["actual_sha256"]);
    assert_record(&doc["models"][1], &[]);
    assert_record(&doc["models"][2], &["actual_size"]);
    assert_record(&doc["models"][3], &[]);
    assert_eq!(keys(&doc["summary"]), ["failed", "ok", "verified"]);

    let run = sc.models(&["status", "--json"]);
    run.expect(0);
    let doc: Value = serde_json::from_str(&run.stdout).expect("status --json is one JSON document");
    assert_eq!(doc["command"], "status");
    for record in doc["models"].as_array().unwrap() {
        let own: &[&str] = match record["state"].as_str().unwrap() {
            "wrong-size" => &["actual_size"],
            "partial" => &["partial_bytes"],
            // A verified file that came from the cache says how it was placed.
            "ok-stamped" if record["placed"].is_string() => &["placed"],
            _ => &[],
        };
        assert_record(record, own);
    }
    assert_eq!(keys(&doc["summary"]), ["bytes_needed", "bytes_present", "models", "ok"]);
}

#[test]
fn an_error_that_ends_a_json_command_early_is_one_json_document_too() {
    let sb = sandbox();
    std::fs::write(&sb.manifest, "[[model]]\nname = \"m\"\nsize = \"big\"\n").unwrap();
    let run = sb.models(&["verify", "--json"]);
    run.expect(2);
    let doc: Value = serde_json::from_str(run.stdout.trim()).expect(&run.stdout);
    assert_eq!(doc["error"]["kind"], "manifest", "{doc}");
    assert_eq!(doc["error"]["exit_code"], 2);
    let problem = &doc["error"]["problems"][0];
    assert!(
        problem["line"].as_u64().unwrap() >= 1 && !problem["message"].as_str().unwrap().is_empty(),
        "{doc}"
    );

    let run = sb.models(&["fetch", "--json", "--no-such-flag"]);
    run.expect(2);
    let doc: Value = serde_json::from_str(run.stdout.trim()).expect(&run.stdout);
    assert_eq!(doc["error"]["kind"], "usage", "{doc}");
    assert!(doc["error"]["message"].as_str().unwrap().contains("--no-such-flag"), "{doc}");

    // Without --json, stdout stays empty.
    let run = sb.models(&["verify"]);
    run.expect(2);
    assert_eq!(run.stdout, "");
}
