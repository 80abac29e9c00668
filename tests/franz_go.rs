//! franz-go's own integration tests (a Go client that shares no code with
//! librdkafka or the Java client) against the real binary: its group
//! tests, its produce tests and its transactional ETL test, with franz-go's idempotent producer (its default)
//! rather than the plain one it used to fall back to:
//! `go test github.com/twmb/franz-go/pkg/kgo -run '…'` (see `TESTS`) with
//! the module pinned in `clients/go/franz-go`.

mod common;

use std::process::Command;

use common::Broker;

/// The franz-go tests run: groups, produce, and its transactional
/// consume-transform-produce test (`TestTxnEtl`).
const TESTS: &str = "Group|Issue523|Issue1034|ConsumeRegex|TestClient_Produce|TestIssue769|TestIssue831|TestProduceRequestNullBatch|TestTxnEtl";

#[test]
fn franz_go_group_and_produce_tests_pass() {
    let broker = Broker::start();
    let module = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/go/franz-go");
    let output = Command::new("go")
        .args([
            "test",
            "github.com/twmb/franz-go/pkg/kgo",
            "-run",
            TESTS,
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
    assert!(
        broker.log().contains("new idempotent producer"),
        "franz-go's producers did not ask for a producer id"
    );
}
