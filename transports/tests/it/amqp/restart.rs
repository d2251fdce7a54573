//! A broker restart mid-session: calls in flight fail at once with an error naming the
//! broker, the manager's listener reconnects by itself, and a new session works.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::amqp as amqp_support;

use std::time::Duration;

use amqp_support::*;
use redpepper_core::{CallError, Session, Value};
use redpepper_tests::rabbitmq::RabbitNode;

/// Dial until a session is up, as the agent program does after a lost connection
/// (with a short pause between attempts instead of its longer backoff).
async fn reconnect(env: &Env) -> Session {
    let dialer = env.dialer("a1");
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    loop {
        let attempt = async {
            let transport = dialer.connect().await.map_err(|e| e.to_string())?;
            let (router, _) = router();
            Session::connect(
                transport,
                "a1",
                "good",
                config(),
                std::sync::Arc::new(router),
            )
            .await
            .map_err(|e| e.to_string())
        };
        match attempt.await {
            Ok(session) => return session,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no session after the restart: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_fails_pending_calls_and_sessions_come_back() {
    let node: &'static RabbitNode = Box::leak(Box::new(RabbitNode::start()));
    let env = Env::new(node, "restart", &["a1"]);
    let mut manager = env.manager(config()).await;
    let (agent_side, _seen) = agent(&env.dialer("a1"), "a1", "good", config()).await;
    let agent_side = agent_side.unwrap();
    let manager_side = manager.next().await.unwrap();

    let to_agent = tokio::spawn({
        let m = manager_side.clone();
        async move { m.call("hang", vec![], vec![]).await }
    });
    let to_manager = tokio::spawn({
        let a = agent_side.clone();
        async move { a.call("hang", vec![], vec![]).await }
    });
    // Both requests are out (the peers' handlers are hanging on them) before the stop.
    let echo = manager_side.call("echo", vec![], vec![]).await.unwrap();
    assert_eq!(echo, Value::Array(vec![]));
    let echo = agent_side.call("echo", vec![], vec![]).await.unwrap();
    assert_eq!(echo, Value::Array(vec![]));

    tokio::task::spawn_blocking(|| node.stop()).await.unwrap();

    for (side, call) in [("manager", to_agent), ("agent", to_manager)] {
        let e = call.await.unwrap().unwrap_err();
        let CallError::SessionClosed(reason) = &e else {
            panic!("{side}: expected the session to fail, got {e:?}")
        };
        assert!(
            reason.to_string().contains("broker connection lost"),
            "{side}: {reason}"
        );
    }
    assert!(manager_side.is_closed() && agent_side.is_closed());

    tokio::task::spawn_blocking(|| node.start_again())
        .await
        .unwrap();
    let agent_side = reconnect(&env).await;
    // Sessions refused while the manager was still reconnecting show up as failures.
    let manager_side = loop {
        if let Ok(session) = manager.next().await {
            break session;
        }
    };
    let v = manager_side
        .call("echo", strs(&["again"]), vec![])
        .await
        .unwrap();
    assert_eq!(v, Value::Array(strs(&["again"])));
    let v = agent_side
        .call("echo", strs(&["back"]), vec![])
        .await
        .unwrap();
    assert_eq!(v, Value::Array(strs(&["back"])));
    // The node is leaked ('static for spawn_blocking): stop it here.
    agent_side.close("done").await;
    tokio::task::spawn_blocking(|| node.stop()).await.unwrap();
}
