//! `mqttspec-server` command line: help, exit codes and the messages that
//! say what to fix. Needs `cargo build --bins` first (scripts/test.sh does it).

use std::process::{Command, Output};

use e2e::{cargo_bin, free_port};

fn run(args: &[&str]) -> Output {
    Command::new(cargo_bin("mqttspec-server"))
        .args([
            "--mqtt-listen",
            &format!("127.0.0.1:{}", free_port()),
            "--ws-listen",
            "off",
        ])
        .args(args)
        .env_remove("MQTTSPEC_DATABASE")
        .output()
        .expect("mqttspec-server runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_lists_every_option() {
    let out = Command::new(cargo_bin("mqttspec-server"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--database",
        "--mqtt-listen",
        "--ws-listen",
        "--broker-url",
        "--prefix",
        "--qos",
        "--schema",
        "--demo",
        "--models",
        "--jwt-secret",
        "--jwks",
        "--tenant-column",
        "--max-payload",
        "--subscription-ttl",
        "--share-group",
        "--change-log-retain",
        "MQTTSPEC_DATABASE",
        "MQTTSPEC_SHARE_GROUP",
    ] {
        assert!(
            help.contains(flag),
            "--help does not mention {flag}:\n{help}"
        );
    }
}

#[test]
fn bad_arguments_exit_2() {
    assert_eq!(run(&["--qos", "5"]).status.code(), Some(2));
    assert_eq!(run(&["--mqtt-listen", "nowhere"]).status.code(), Some(2));
    assert_eq!(
        run(&["--broker-username", "u"]).status.code(),
        Some(2),
        "needs --broker-url"
    );
    assert_eq!(
        run(&["--share-group", "g"]).status.code(),
        Some(2),
        "sharing needs --broker-url"
    );
    assert_eq!(run(&["--change-log-retain", "0"]).status.code(), Some(2));
    let jwt_external = run(&["--broker-url", "mqtt://127.0.0.1:1", "--jwt-secret", "s"]);
    assert_eq!(
        jwt_external.status.code(),
        Some(2),
        "an external broker does not report usernames: {}",
        stderr(&jwt_external)
    );
    let ws = Command::new(cargo_bin("mqttspec-server"))
        .args(["--ws-listen", "here"])
        .output()
        .unwrap();
    assert_eq!(ws.status.code(), Some(1));
    assert!(stderr(&ws).contains("is not HOST:PORT"), "{}", stderr(&ws));
}

#[test]
fn startup_errors_exit_1_and_say_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sql").display().to_string();
    let models = dir.path().join("models.json");
    std::fs::write(&models, r#"{"entities": ["public.nothing"]}"#).unwrap();
    let models = models.display().to_string();
    let closed = format!("postgres://postgres@127.0.0.1:{}/x", free_port());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--database", "mysql://db"], "unsupported database URL"),
        (vec!["--database", &closed], "cannot connect to PostgreSQL"),
        (vec!["--schema", &missing], "cannot read schema file"),
        (vec!["--demo", "--models", &models], "public.nothing"),
        (vec!["--tenant-column", "tenant_id"], "--jwt-secret"),
        (vec!["--broker-url", "http://x"], "mqtt://"),
    ];
    let json = run(&["--log-json", "--database", "mysql://db"]);
    assert_eq!(json.status.code(), Some(1));
    assert!(
        stderr(&json)
            .lines()
            .any(|l| l.starts_with('{') && l.contains("\"level\":\"ERROR\"")),
        "--log-json logs JSON lines: {}",
        stderr(&json)
    );
    for (args, needle) in cases {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(needle),
            "{args:?} should say {needle:?}: {}",
            stderr(&out)
        );
    }
}
