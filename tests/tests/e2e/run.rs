//! `models run`: the checkpoints folder handed to the command, stdout the command's,
//! exit codes and signals passing through.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use tests::{Reply, payload, wait_until};

use crate::one_model;
use crate::{sandbox, scenario};

#[test]
fn run_leaves_stdout_to_the_command() {
    let sc = scenario();
    let text = "a model that is text, so stdout can be compared byte for byte\n".repeat(50);
    sc.model("m", "m.bin", std::sync::Arc::new(text.clone().into_bytes()));
    let run = sc.models(&["run", "--", "sh", "-c", "cat \"$MODELS_CHECKPOINTS_DIR/m.bin\""]);
    run.expect(0);
    assert_eq!(run.stdout, text, "`models run -- cat x > copy` makes an exact copy");
    assert!(run.stderr.contains("fetched 1"), "the summary goes to stderr: {}", run.stderr);
}

#[test]
fn run_passes_exit_codes_through_and_names_a_command_that_cannot_start() {
    let sb = sandbox();
    sb.write_manifest(&[]);
    sb.models(&["run", "--", "sh", "-c", "exit 2"]).expect(2);
    let run = sb.models(&["run", "--", "no-such-command-here"]);
    run.expect(127);
    assert!(run.stderr.contains("cannot start `no-such-command-here`"), "{}", run.stderr);
    let script = sb.dir.join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    sb.models(&["run", "--", script.to_str().unwrap()]).expect(126);
}

#[test]
fn a_signal_to_run_reaches_its_command_and_nothing_is_orphaned() {
    let sb = sandbox();
    sb.write_manifest(&[]);
    let marker = sb.dir.join("got-term");
    let pidfile = sb.dir.join("child.pid");
    let script = format!(
        "echo $$ > '{}'; trap 'echo term > \"{}\"; exit 3' TERM; while true; do sleep 0.05; done",
        pidfile.display(),
        marker.display()
    );
    let child = sb.spawn_logged(&["run", "--", "sh", "-c", &script]);
    wait_until(Duration::from_secs(30), "the command to start", || pidfile.exists());
    let tool_pid = child.pid();
    // SAFETY: sending a signal to the tool this test started.
    unsafe { libc::kill(tool_pid as libc::pid_t, libc::SIGTERM) };
    let run = child.finish();
    assert_eq!(run.code, 3, "the command's own code: {}", run.stderr);
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "term");
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the command is gone");
}

#[test]
fn run_starts_the_command_with_the_checkpoints_dir_and_passes_its_exit_code() {
    let sc = scenario();
    let server = &sc.server;
    let data = payload(1000, 309);
    server.script("/m.bin", vec![Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &[&server.url("/m.bin")]);
    let script = "test -f \"$MODELS_CHECKPOINTS_DIR/m.bin\" && echo \"args:$1,$2\" && exit 7";
    let run = sc.models(&["run", "--", "sh", "-c", script, "sh", "one", "two words"]);
    run.expect(7);
    assert!(run.stdout.contains("args:one,two words"), "{}", run.stdout);

    let missing = one_model(server.url("/gone.bin"), &payload(10, 310));
    let marker = missing.dir.join("started");
    let touch = format!("touch {}", marker.display());
    let run = missing.models(&["run", "--backoff-ms", "1", "--", "sh", "-c", &touch]);
    run.expect(1);
    assert!(!marker.exists(), "the command did not start");
    assert!(run.stderr.contains("could not fetch m"), "the manual block is shown: {}", run.stderr);
    assert!(run.stderr.contains("not starting `sh`"), "{}", run.stderr);
}
