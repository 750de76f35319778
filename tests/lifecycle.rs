//! The process as an operator sees it: flags, exit codes, signals.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{testdata, Imgedge};

fn imgedge(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_imgedge"))
        .args(args)
        .env_remove("PORT")
        .output()
        .expect("run imgedge")
}

/// The server on loopback port `port` (`-p`), without a disk cache or grace period, stdout
/// discarded.
fn bare(port: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_imgedge"));
    command
        .args([
            "-a",
            "127.0.0.1",
            "-p",
            port,
            "-grace-period",
            "0",
            "-cache-disk",
            "0",
        ])
        .stdout(std::process::Stdio::null());
    command
}

#[test]
fn help_prints_usage_and_exits_1() {
    let out = imgedge(&["-h"]);
    assert_eq!(out.status.code(), Some(1));
    let usage = String::from_utf8_lossy(&out.stderr);
    for flag in [
        "-p <int>",
        "-mount <string>",
        "-enable-url-source",
        "-path-prefix",
    ] {
        assert!(usage.contains(flag), "{flag} missing from:\n{usage}");
    }
}

#[test]
fn version_prints_and_exits_1() {
    let out = imgedge(&["-v"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn unknown_flags_and_bad_values_exit_2_with_usage() {
    let out = imgedge(&["-no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("flag provided but not defined: -no-such-flag"),
        "{err}"
    );
    assert!(err.contains("-enable-url-source"));
    let out = imgedge(&["-p", "eighty"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value \"eighty\" for flag -p"));
}

#[test]
fn invalid_settings_exit_1_with_a_message() {
    let out = imgedge(&["-mount", "/no/such/dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error while mounting directory"));
    let out = imgedge(&["-mount", "/"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot mount root directory"));
    let out = imgedge(&["-allowed-origins", "example.org"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-allowed-origins"));
}

#[test]
fn port_env_overrides_the_flag() {
    let port = common::free_port();
    let mut child = bare("1").env("PORT", port.to_string()).spawn().unwrap();
    common::wait_listening(([127, 0, 0, 1], port).into());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn sigterm_and_sigint_stop_an_idle_server_quickly() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut s = Imgedge::start(&["-mount", testdata().to_str().unwrap()]);
        assert_eq!(s.get("/health").status, 200);
        let took = s.stop_with(signal);
        assert!(
            took < Duration::from_secs(8),
            "signal {signal} took {took:?}"
        );
    }
}

/// During `-shutdown-delay` the operator can still cut the stop short: a second TERM ends the
/// delay (then the grace period, 0 here), INT exits at once. Both are exit 0, long before the
/// 60 s delay would have ended.
#[test]
fn a_second_term_or_an_int_cuts_the_shutdown_delay_short() {
    for second in [libc::SIGTERM, libc::SIGINT] {
        let mut s = Imgedge::start(&["-shutdown-delay", "60", "-cache-disk", "0"]);
        // SAFETY: kill(2) on the PID of the child this harness started.
        unsafe {
            libc::kill(s.child.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while s.get("/health/ready").status != 503 {
            assert!(
                std::time::Instant::now() < deadline,
                "readiness never failed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            s.get("/health").status,
            200,
            "still serving during the delay"
        );
        let took = s.stop_with(second);
        assert!(
            took < Duration::from_secs(8),
            "signal {second} took {took:?}"
        );
        assert_eq!(s.child.wait().unwrap().code(), Some(0), "signal {second}");
    }
}

/// Ctrl-C stops at once and quietly. Before, pingora's fast shutdown stopped its runtimes under
/// a spinning accept loop: about one stop in three logged "Accept() failed" a million times
/// over 3 s. Several stops, so that the old behaviour would almost surely have shown.
#[test]
fn sigint_stops_without_flooding_the_log() {
    for _ in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr.log");
        let port = common::free_port();
        let mut child = bare(&port.to_string())
            .env_remove("PORT")
            .env_remove("IMGEDGE_LOG")
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        common::wait_listening(([127, 0, 0, 1], port).into());
        // SAFETY: kill(2) on the PID of the child started above.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGINT);
        }
        assert_eq!(child.wait().unwrap().code(), Some(0));
        let log = std::fs::read_to_string(&stderr).unwrap();
        assert!(log.contains("SIGINT: stopping now"), "{log}");
        assert_eq!(log.matches("Accept() failed").count(), 0, "{:.2000}", log);
    }
}
