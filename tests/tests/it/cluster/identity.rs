//! One agent id, two nodes: a session of `twin-00` on A (a raw wire-level peer, which
//! never reconnects), then a real agent `twin-00` on B. The newer session survives
//! cluster-wide: A's, B's and C's `/v1/agents` agree on one entry, on B; the older one
//! is told Bye "replaced" by A.

use redpepper_tests::fleet::secret_of;
use redpepper_tests::serde_json::{json, Value};
use redpepper_tests::{raw_peer, TIMEOUT};

use super::*;

#[test]
fn the_newest_session_of_an_id_wins_cluster_wide() {
    let (w, _) = shared();
    let f = &w.fleet;
    let port: u16 = f
        .node_tls_addr(A)
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let secret = secret_of(TWIN);
    let older = raw_peer(
        port,
        &f.certs.ca_cert,
        &["--id", TWIN, "--secret", &secret, "--timeout", "120"],
    );
    older
        .wait_for_json(
            |v| v["event"] == "received" && v["message"]["t"] == 11,
            TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{TWIN} (raw peer) not accepted by {A}: {e}"));
    for node in [A, B, C] {
        w.wait_view(node, &[(TWIN, A)], &[&older]);
    }

    let newer = w.spawn_agent(TWIN, Via::Tls(&[B]), "");
    w.connected_on(B, TWIN, 0);
    let bye = older
        .wait_for_json(
            |v| v["event"] == "received" && v["message"]["t"] == 14,
            TIMEOUT * 2,
        )
        .unwrap_or_else(|e| {
            panic!(
                "the older session of {TWIN} (on {A}) got no Bye after {TWIN} connected to {B}: {e}\n{}",
                w.diag(&[&newer])
            )
        });
    let reason = bye["message"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("replaced"),
        "the older session of {TWIN} on {A}: want Bye \"replaced…\": {bye}"
    );
    older
        .wait_for_json(|v| v["event"] == "closed", TIMEOUT)
        .unwrap_or_else(|e| panic!("{A} did not close the replaced session of {TWIN}: {e}"));

    for node in [A, B, C] {
        w.wait_view(node, &[(TWIN, B)], &[&newer]);
    }
    // And it answers from anywhere.
    let r = ctl_on(f, A, &["call", TWIN, "echo", "one-of-me", "--json"]);
    assert_eq!(
        r.code,
        0,
        "call {TWIN} (on {B}) from {A}: {r}\n{}",
        w.diag(&[&newer])
    );
    let answer: Value = r.json();
    assert_eq!(answer["data"]["args"], json!(["one-of-me"]), "{r}");
}
