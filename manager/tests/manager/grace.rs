//! `commands.grace`: a command whose agent's session ends waits for the agent to come
//! back with its result.

use super::*;

#[tokio::test]
async fn a_result_on_the_agents_next_session_completes_the_command() {
    let (manager, d) = start();
    manager.set_command_grace(Duration::from_secs(3600));
    let first = raw_agent(&d, "g1", silent()).await;
    manager.wait_for_agent("g1", WAIT).await.unwrap();
    let run = manager
        .run_command("g1", "noop.Noop", vec![], vec![])
        .await
        .unwrap();
    let id = run.id.clone();
    first.close("network blip").await;
    // Another agent cannot complete it.
    let other = raw_agent(&d, "intruder", silent()).await;
    other
        .notify("command_result", command_result(&id, "forged"))
        .await
        .unwrap();
    other.barrier().await.unwrap();
    // The agent comes back with the result on a new session.
    let second = raw_agent(&d, "g1", silent()).await;
    second
        .notify("command_result", command_result(&id, "after the blip"))
        .await
        .unwrap();
    let r = run.wait(WAIT, |_, _, _| {}).await.unwrap();
    assert_eq!(r.output, "after the blip");
    assert!(r.success);
}

#[tokio::test]
async fn a_command_is_lost_when_the_agent_stays_away_past_the_grace() {
    let (manager, d) = start();
    manager.set_command_grace(Duration::from_millis(300));
    let agent = raw_agent(&d, "g2", silent()).await;
    manager.wait_for_agent("g2", WAIT).await.unwrap();
    let run = manager
        .run_command("g2", "noop.Noop", vec![], vec![])
        .await
        .unwrap();
    let id = run.id.clone();
    agent.close("gone for good").await;
    let err = run.wait(WAIT, |_, _, _| {}).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("did not come back"), "{text}");
    assert!(text.contains("gone for good"), "{text}");
    // A result arriving after that is dropped (the run is over), and harmless.
    let late = raw_agent(&d, "g2", silent()).await;
    late.notify("command_result", command_result(&id, "too late"))
        .await
        .unwrap();
    late.barrier().await.unwrap();
    assert!(manager.session("g2").is_some());
}

#[tokio::test]
async fn shutting_down_ends_the_commands_waiting_for_their_agent() {
    let (manager, d) = start();
    manager.set_command_grace(Duration::from_secs(3600));
    let agent = raw_agent(&d, "g3", silent()).await;
    manager.wait_for_agent("g3", WAIT).await.unwrap();
    let away = manager
        .run_command("g3", "noop.Noop", vec![], vec![])
        .await
        .unwrap();
    let mut events = manager.events();
    agent.close("blip").await;
    // Its session is gone on the manager's side too: the command waits for the agent.
    loop {
        match tokio::time::timeout(WAIT, events.recv()).await.unwrap() {
            Ok(ManagerEvent::Disconnected { agent, .. }) if agent == "g3" => break,
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let still = raw_agent(&d, "g4", silent()).await;
    manager.wait_for_agent("g4", WAIT).await.unwrap();
    let connected = manager
        .run_command("g4", "noop.Noop", vec![], vec![])
        .await
        .unwrap();
    manager.shutdown().await;
    let err = away.wait(WAIT, |_, _, _| {}).await.unwrap_err();
    assert!(err.to_string().contains("manager shut down"), "{err}");
    let err = connected.wait(WAIT, |_, _, _| {}).await.unwrap_err();
    assert!(err.to_string().contains("agent disconnected"), "{err}");
    drop(still);
}
