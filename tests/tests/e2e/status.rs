//! `models status`: instant, names every state, and a reader that leaves or a full
//! standard output never turns into a panic.

use tests::{Pin, payload};

use crate::scenario;
use crate::stamped;

#[test]
fn a_closed_pipe_ends_quietly_and_a_full_stdout_is_an_error() {
    let sc = scenario();
    for i in 0..3 {
        sc.model(&format!("m{i}"), &format!("m{i}.bin"), payload(100, 520 + i));
    }
    let tool = env!("CARGO_BIN_EXE_xtask-under-test");
    let (m, c) = (sc.manifest.display().to_string(), sc.checkpoints.display().to_string());
    // The reading end is closed before the tool starts: its first write meets a closed
    // pipe, whatever the timing (a `| head -1` might read everything before it exits).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let piped = std::process::Command::new(tool)
        .args(["models", "status", "--manifest", &m, "--checkpoints-dir", &c])
        .stdout(writer)
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&piped.stderr);
    assert!(!err.contains("panicked") && !err.contains("standard output"), "ends quietly: {err}");
    assert_eq!(piped.status.code(), Some(0), "a reader that left is no failure: {err}");

    let full = std::process::Command::new(tool)
        .args(["models", "status", "--manifest", &m, "--checkpoints-dir", &c])
        .stdout(std::fs::File::options().write(true).open("/dev/full").unwrap())
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&full.stderr);
    assert_eq!(full.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot write the results to standard output") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn status_is_instant_and_names_every_state() {
    let (sb, _) = stamped();
    let server = &sb.server;
    let others: Vec<_> = (0..4).map(|i| payload(1000, 70 + i)).collect();
    let mut pins = vec![Pin::new("m", "m.bin", &payload(100_000, 60), &[server.url("/m")])];
    for (i, data) in others.iter().enumerate() {
        let mut pin = Pin::new(&format!("o{i}"), &format!("o{i}.bin"), data, &[server.url("/x")]);
        pin.group = Some("extra".into());
        pins.push(pin);
    }
    sb.write_manifest(&pins);
    std::fs::write(sb.file("o1.bin"), &others[1][..10]).unwrap();
    std::fs::write(sb.file("o2.bin"), &*others[2]).unwrap();
    let partial = sb.cache_partial(&pins[4].sha256);
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, &others[3][..420]).unwrap();
    let run = sb.models(&["status"]);
    run.expect(0);
    let row = |name: &str| run.stdout.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_owned();
    assert!(row("m ").contains("ok stamped"), "{}", run.stdout);
    assert!(row("o0").contains("missing"), "{}", run.stdout);
    assert!(row("o1").contains("wrong size"), "{}", run.stdout);
    assert!(row("o2").contains("unverified"), "{}", run.stdout);
    assert!(row("o3").contains("partial 42%"), "{}", run.stdout);
    assert!(row("o3").contains("extra"), "group column: {}", run.stdout);
    assert!(run.stdout.contains("1 of 5 ok"), "{}", run.stdout);
}
