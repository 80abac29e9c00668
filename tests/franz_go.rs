//! franz-go's own group integration tests (a Go client that shares no
//! code with librdkafka or the Java client) against the real binary:
//! `go test github.com/twmb/franz-go/pkg/kgo -run 'Group|Issue523|Issue1034|ConsumeRegex'`
//! with the module pinned in `clients/go/franz-go`.

mod common;

use std::process::Command;

use common::Broker;

#[test]
fn franz_go_group_tests_pass() {
    let broker = Broker::start();
    let module = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/go/franz-go");
    let output = Command::new("go")
        .args([
            "test",
            "github.com/twmb/franz-go/pkg/kgo",
            "-run",
            "Group|Issue523|Issue1034|ConsumeRegex",
            "-count=1",
            "-timeout=15m",
        ])
        .current_dir(&module)
        .env("KGO_SEEDS", broker.bootstrap())
        .env("KGO_TEST_RF", "1")
        .output()
        .expect("run go test (is Go installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "franz-go's tests failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("ok  \tgithub.com/twmb/franz-go/pkg/kgo"),
        "{stdout}"
    );
}
