//! The library's `fetch`, as another workspace's xtask calls it: one callback hears each
//! model's events, one result per model comes back, and nothing is printed.

use std::process::Command;
use std::sync::Mutex;

use camino::{Utf8Path, Utf8PathBuf};
use xtask::error::Class;
use xtask::{Ended, Event, FetchOptions};

/// A folder with a manifest of two models served from `file://` URLs: `good` whose bytes
/// match its pin, `bad` whose source holds other bytes.
fn two_models(dir: &Utf8Path) -> (Utf8PathBuf, Utf8PathBuf) {
    let data = b"the pinned bytes of a model\n".repeat(1000);
    std::fs::write(dir.join("good.src"), &data).unwrap();
    std::fs::write(dir.join("bad.src"), b"something else entirely").unwrap();
    std::fs::write(dir.join("good.bin.tmp"), &data).unwrap();
    let sha = xtask::hash_file(&dir.join("good.bin.tmp")).unwrap();
    std::fs::remove_file(dir.join("good.bin.tmp")).unwrap();
    let entry = |name: &str| {
        format!(
            "[[model]]\nname = \"{name}\"\npath = \"{name}.bin\"\nsize = {}\nsha256 = \"{sha}\"\nurls = [\"file://{dir}/{name}.src\"]\n\n",
            data.len()
        )
    };
    let manifest = dir.join("models.toml");
    std::fs::write(&manifest, entry("good") + &entry("bad")).unwrap();
    (manifest, dir.join("checkpoints"))
}

fn no_cache() -> FetchOptions {
    FetchOptions { cache_dir: None, retries: 0, ..FetchOptions::default() }
}

#[test]
fn fetch_tells_a_callback_each_models_events_and_returns_one_result_per_model() {
    let dir = tempfile::tempdir().unwrap();
    let dir = Utf8Path::from_path(dir.path()).unwrap();
    let (manifest, checkpoints) = two_models(dir);
    let heard = Mutex::new(Vec::new());
    let on_event = |model: &xtask::Model, event: &Event<'_>| {
        let kind = match event {
            Event::Downloading { .. } => "downloading",
            Event::Started { .. } => "started",
            Event::Bytes(_) => "bytes",
            Event::Finished => "finished",
            Event::GaveUp { .. } => "gave-up",
            _ => return,
        };
        let mut heard = heard.lock().unwrap();
        // Bytes come in many events: one is enough to say they came.
        if heard.last() != Some(&(model.name.clone(), kind)) {
            heard.push((model.name.clone(), kind));
        }
    };
    let results = xtask::fetch(&manifest, &checkpoints, &no_cache(), &on_event).unwrap();

    let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["good", "bad"], "one result per model, in manifest order");
    assert!(matches!(&results[0].ended, Ended::Downloaded { bytes: 28_000, .. }), "{:?}", results[0]);
    assert_eq!(results[0].path, checkpoints.join("good.bin"));
    let Ended::Failed(tried) = &results[1].ended else { panic!("{:?}", results[1]) };
    assert_eq!(tried.len(), 1);
    assert_ne!(tried[0].fault.class, Class::LocalIo, "the source's fault, not the disk's: {:?}", tried[0]);
    assert!(!results[1].is_ok() && results[0].is_ok());

    let of = |name: &str| -> Vec<&str> {
        let heard = heard.lock().unwrap();
        heard.iter().filter(|(model, _)| model == name).map(|(_, kind)| *kind).collect()
    };
    assert_eq!(of("good"), ["downloading", "started", "bytes", "finished"]);
    assert_eq!(of("bad").first(), Some(&"downloading"));
    assert_eq!(of("bad").last(), Some(&"gave-up"));
    assert!(!of("bad").contains(&"finished"));

    // A second call finds the good model present, with no event for it.
    heard.lock().unwrap().clear();
    let again = xtask::fetch(&manifest, &checkpoints, &no_cache(), &on_event).unwrap();
    assert!(matches!(again[0].ended, Ended::Present), "{:?}", again[0]);
    assert!(of("good").is_empty(), "{:?}", of("good"));
}

/// Runs a fetch that downloads one model and fails another, when this test binary is
/// started by [`fetch_prints_nothing_on_stdout_or_stderr`]; otherwise does nothing.
#[test]
fn library_child() {
    let Ok(dir) = std::env::var("XTASK_LIBRARY_CHILD") else { return };
    let (manifest, checkpoints) = two_models(Utf8Path::new(&dir));
    let results = xtask::fetch(&manifest, &checkpoints, &no_cache(), &|_, _| {}).unwrap();
    assert_eq!(results.len(), 2);
    let report = xtask::verify(&manifest, &checkpoints, true).unwrap();
    assert_eq!((report.ok, report.failed), (1, 1));
}

#[test]
fn fetch_prints_nothing_on_stdout_or_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["library_child", "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env("XTASK_LIBRARY_CHILD", dir.path())
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&child.stdout), String::from_utf8_lossy(&child.stderr));
    assert!(child.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "the child ran its test: {stdout}");
    assert_eq!(stderr, "", "nothing on stderr");
    // Only the test harness's own lines are on stdout.
    let ours: Vec<&str> = stdout
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with("running ") && !line.starts_with("test result"))
        .filter(|line| !line.trim_matches('.').is_empty())
        .collect();
    assert!(ours.is_empty(), "the library printed: {ours:?}");
}
