//! kill -9 tinyproxy (HTTP CONNECT forward proxy) while a call to the TLS agent
//! tunnelled through it is in flight: the caller gets `502 connection_lost` at once;
//! tinyproxy restarted on the same port, the agent comes back by itself and a new call
//! succeeds.

use redpepper_tests::proxy::{Tinyproxy, TinyproxyConfig};

use super::{
    agent_logged, assert_connection_lost, builder, call_succeeds, PendingCall, CONNECTION_DROPPED,
};

#[test]
fn kill_9_tinyproxy_mid_call() {
    // No pings from the manager: they would end the frozen agent's session first.
    let mut f = builder(&["a1"]).ping_interval(0).build();
    f.spawn_manager();
    let tls_port = f.manager().tls_addr.unwrap().port();
    let mut proxy = Tinyproxy::start(&f.path("proxy"), TinyproxyConfig::connect_to(tls_port));
    let agent = f.spawn_agent_with("a1", &format!("proxy: {}\n", proxy.url()));
    let m = f.manager();
    let (line, _) = m.connected("a1", 0);

    let paused = agent.pause();
    let call = PendingCall::start(m, "a1");
    let mark = agent.line_count();
    proxy.stop(); // SIGKILL to tinyproxy's process group: every tunnel breaks
    assert_connection_lost("a1", CONNECTION_DROPPED, call.answer());
    paused.resume();

    agent_logged(&agent, mark, "disconnected from manager");
    proxy.restart();
    m.connected("a1", line + 1);
    call_succeeds(m, "a1");
}
