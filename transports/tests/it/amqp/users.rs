//! Two broker users: the second one cannot inject into the first one's session, in
//! either direction, whatever it puts in the message properties; and trying does not
//! end the victim's session either (that would let anyone who learns a session id cut
//! it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::amqp as amqp_support;

use std::sync::Arc;

use amqp_support::*;
use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel};
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

/// The name of the first queue of `vhost` whose name starts with `prefix`.
fn queue_named(node: &RabbitNode, vhost: &str, prefix: &str) -> String {
    let queues =
        tokio::task::block_in_place(|| node.ctl(&["list_queues", "-p", vhost, "name"]).unwrap());
    queues
        .lines()
        .map(str::trim)
        .find(|q| q.starts_with(prefix))
        .unwrap_or_else(|| panic!("no queue {prefix}* in {queues}"))
        .to_owned()
}

/// The victim's session works both ways: the messages these calls carry were
/// published after whatever was injected before, into the same queues.
async fn still_works(v: &Victim, what: &str) {
    let answer = v
        .manager
        .call("echo", strs(&[what]), vec![])
        .await
        .unwrap_or_else(|e| panic!("{what}: manager to agent: {e}"));
    assert_eq!(answer, Value::Array(strs(&[what])));
    let answer = v
        .agent
        .call("echo", strs(&[what]), vec![])
        .await
        .unwrap_or_else(|e| panic!("{what}: agent to manager: {e}"));
    assert_eq!(answer, Value::Array(strs(&[what])));
    assert!(!v.manager.is_closed() && !v.agent.is_closed(), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_broker_user_cannot_inject_into_a_session() {
    let node = RabbitNode::shared();
    let env = Env::new(node, "two-users", &["a1", "a2"]);
    tokio::task::block_in_place(|| {
        node.add_user(
            "mallory",
            &password("mallory"),
            "two-users",
            &mallory_perms(),
        );
    });
    let mut manager = env.manager(config()).await;
    let (_conn, ch) = env.publisher("mallory").await;
    let v = victim(&env, &mut manager).await;
    let instance = queue_named(node, "two-users", &format!("{QUEUE}."));

    // Into the manager's instance queue, as herself and without user_id: dropped, and
    // the session goes on (the calls' answers queue up behind the injections).
    inject(&ch, &instance, &v.sid, Some("mallory"))
        .await
        .unwrap();
    inject(&ch, &instance, &v.sid, None).await.unwrap();
    still_works(&v, "after injections into the instance queue").await;
    no_injected(&mut manager.seen);

    // Into the hello queue with the victim's session id (a hello for an existing
    // session), as herself and without user_id: dropped the same way. The hello
    // queue is read in order: once a later hello made a session, they were handled.
    inject(&ch, QUEUE, &v.sid, Some("mallory")).await.unwrap();
    inject(&ch, QUEUE, &v.sid, None).await.unwrap();
    let (later, _seen) = agent(&env.dialer("a2"), "a2", "good", config()).await;
    later.unwrap();
    manager.next().await.unwrap();
    still_works(&v, "after injections into the hello queue").await;
    no_injected(&mut manager.seen);

    // Claiming to be a1: the broker itself refuses the publish (user_id is checked
    // against the login), and the victim's session is untouched.
    let e = inject(&ch, QUEUE, &v.sid, Some("a1")).await.unwrap_err();
    assert!(e.to_string().contains("user_id"), "{e}");
    still_works(&v, "after a refused publish").await;
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
    let (_conn, ch) = env.publisher("mallory").await;
    let mut v = victim(&env, &mut manager).await;
    let inbox = queue_named(node, "two-users-inbox", "redpepper.agent.a1.");

    inject(&ch, &inbox, &v.sid, Some("mallory")).await.unwrap();
    inject(&ch, &inbox, &v.sid, None).await.unwrap();
    still_works(&v, "after injections into the inbox").await;
    no_injected(&mut v.agent_seen);

    // The session still ends as sessions do.
    v.agent.close("done").await;
    let reason = tokio::time::timeout(WAIT, v.manager.closed())
        .await
        .unwrap();
    assert_eq!(reason, SessionError::ByeReceived("done".into()));
}

/// `amqp.manager_user` pins the manager's broker user: a manager running as another
/// broker user is not believed (its answer is dropped and the hello times out), the
/// real one is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_manager_user_is_the_only_one_believed() {
    let node = RabbitNode::shared();
    let env = Env::new(node, "pinned-manager", &["a1"]);
    let mut manager = env.manager(config()).await;
    let short = redpepper_core::SessionConfig {
        hello_timeout: std::time::Duration::from_secs(3),
        ..config()
    };

    let pinned_elsewhere = env
        .dialer("a1")
        .with_manager_user(Some("not-the-manager".into()));
    let (handler, _) = router();
    let err = Session::connect(
        pinned_elsewhere.connect().await.unwrap(),
        "a1",
        "good",
        short.clone(),
        Arc::new(handler),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SessionError::HelloTimeout { .. }), "{err:?}");

    let pinned_right = env.dialer("a1").with_manager_user(Some("manager".into()));
    let (handler, _) = router();
    let agent = Session::connect(
        pinned_right.connect().await.unwrap(),
        "a1",
        "good",
        short,
        Arc::new(handler),
    )
    .await
    .unwrap();
    // The manager accepted both hellos; the second session works both ways.
    let _first = manager.next().await.unwrap();
    let second = manager.next().await.unwrap();
    let reply = second
        .call("echo", strs(&["pinned"]), vec![])
        .await
        .unwrap();
    assert!(reply.to_string().contains("pinned"), "{reply:?}");
    drop(agent);
}
