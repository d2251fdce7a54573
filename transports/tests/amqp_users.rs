//! Two broker users: the second one cannot inject into the first one's session, in
//! either direction, whatever it puts in the message properties.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod amqp_support;

use std::sync::Arc;

use amqp_support::*;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use redpepper_core::codec::{encode, Message, Notification};
use redpepper_core::{Session, SessionError, Value};
use redpepper_tests::rabbitmq::{Perms, RabbitNode};

/// Mallory may publish anywhere in the vhost (the worst case: write on `.*`).
fn mallory_perms() -> Perms {
    Perms {
        configure: "^mallory\\..*".into(),
        write: ".*".into(),
        read: "^mallory\\..*".into(),
    }
}

struct Victim {
    sid: String,
    agent: Session,
    manager: Session,
    agent_seen: tokio::sync::mpsc::UnboundedReceiver<Seen>,
}

async fn victim(env: &Env, manager: &mut TestManager) -> Victim {
    let transport = env.dialer("a1").connect().await.unwrap();
    let sid = transport.session_id().to_owned();
    let (router, agent_seen) = router();
    let agent = Session::connect(transport, "a1", "good", config(), Arc::new(router))
        .await
        .unwrap();
    let manager = manager.next().await.unwrap();
    Victim {
        sid,
        agent,
        manager,
        agent_seen,
    }
}

async fn mallory(env: &Env) -> (Connection, Channel) {
    let url = env
        .node
        .amqp_url("mallory", &password("mallory"), &env.vhost);
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    (conn, ch)
}

/// Publish a notification into `queue` claiming session `sid`.
async fn inject(
    ch: &Channel,
    queue: &str,
    sid: &str,
    user_id: Option<&str>,
) -> Result<(), lapin::Error> {
    let body = encode(&Message::Notification(Notification {
        r#type: "injected".into(),
        data: Value::from("by mallory"),
    }))
    .unwrap();
    let mut props = BasicProperties::default().with_correlation_id(sid.into());
    if let Some(u) = user_id {
        props = props.with_user_id(ShortString::from(u));
    }
    ch.basic_publish(
        ShortString::default(),
        queue.into(),
        BasicPublishOptions::default(),
        &body,
        props,
    )
    .await?
    .await
    .map(drop)
}

fn no_injected(seen: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>) {
    while let Ok(s) = seen.try_recv() {
        assert!(
            !matches!(&s, Seen::Notification(n) if n.r#type == "injected"),
            "the injected notification reached a handler"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_broker_user_cannot_inject_into_a_session() {
    let node = RabbitNode::shared();
    let env = Env::new(node, "two-users", &["a1"]);
    tokio::task::block_in_place(|| {
        node.add_user(
            "mallory",
            &password("mallory"),
            "two-users",
            &mallory_perms(),
        );
    });
    let mut manager = env.manager(config()).await;
    let (_conn, ch) = mallory(&env).await;

    // Into the manager, as herself: rejected, logged, and the session ends.
    let v = victim(&env, &mut manager).await;
    inject(&ch, QUEUE, &v.sid, Some("mallory")).await.unwrap();
    let reason = tokio::time::timeout(WAIT, v.manager.closed())
        .await
        .unwrap();
    let text = reason.to_string();
    assert!(
        text.contains("broker user \"mallory\" was rejected"),
        "{text}"
    );
    assert!(text.contains("belongs to a1"), "{text}");
    assert!(text.contains(&v.sid), "{text}");
    tokio::time::timeout(WAIT, v.agent.closed()).await.unwrap();
    no_injected(&mut manager.seen);

    // Into the manager without user_id: rejected the same way.
    let v = victim(&env, &mut manager).await;
    inject(&ch, QUEUE, &v.sid, None).await.unwrap();
    let reason = tokio::time::timeout(WAIT, v.manager.closed())
        .await
        .unwrap();
    assert!(reason.to_string().contains("no user_id"), "{reason}");
    no_injected(&mut manager.seen);

    // Claiming to be a1: the broker itself refuses the publish (user_id is checked
    // against the login), and the victim's session is untouched.
    let v = victim(&env, &mut manager).await;
    let e = inject(&ch, QUEUE, &v.sid, Some("a1")).await.unwrap_err();
    assert!(e.to_string().contains("user_id"), "{e}");
    let answer = v
        .manager
        .call("echo", strs(&["fine"]), vec![])
        .await
        .unwrap();
    assert_eq!(answer, Value::Array(strs(&["fine"])));
    no_injected(&mut manager.seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_broker_user_cannot_inject_into_an_agents_inbox() {
    let node = RabbitNode::shared();
    let env = Env::new(node, "two-users-inbox", &["a1"]);
    tokio::task::block_in_place(|| {
        node.add_user(
            "mallory",
            &password("mallory"),
            "two-users-inbox",
            &mallory_perms(),
        );
    });
    let mut manager = env.manager(config()).await;
    let (_conn, ch) = mallory(&env).await;
    let mut v = victim(&env, &mut manager).await;
    let queues = tokio::task::block_in_place(|| {
        node.ctl(&["list_queues", "-p", "two-users-inbox", "name"])
            .unwrap()
    });
    let inbox = queues
        .lines()
        .map(str::trim)
        .find(|q| q.starts_with("redpepper.agent.a1."))
        .unwrap_or_else(|| panic!("no inbox in {queues}"))
        .to_owned();

    inject(&ch, &inbox, &v.sid, Some("mallory")).await.unwrap();
    let reason = tokio::time::timeout(WAIT, v.agent.closed()).await.unwrap();
    let text = reason.to_string();
    assert!(
        text.contains("broker user \"mallory\" was rejected"),
        "{text}"
    );
    assert!(text.contains("the manager is manager"), "{text}");
    no_injected(&mut v.agent_seen);
    // The agent closed its end: the manager's side ends too.
    let reason = tokio::time::timeout(WAIT, v.manager.closed())
        .await
        .unwrap();
    assert_eq!(reason, SessionError::PeerClosed);
}
