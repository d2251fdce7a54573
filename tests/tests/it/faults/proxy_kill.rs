//! kill -9 tinyproxy (HTTP CONNECT forward proxy) while a call to the TLS agent
//! tunnelled through it is in flight: the caller gets `502 connection_lost` at once;
//! tinyproxy restarted on the same port, the agent comes back by itself and a new call
//! succeeds.

use redpepper_tests::proxy::{Tinyproxy, TinyproxyConfig};

use super::{builder, kill_mid_call};

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

    // SIGKILL to the service's process group: every connection through it breaks.
    kill_mid_call(
        m,
        &agent,
        line,
        &mut proxy,
        Tinyproxy::stop,
        Tinyproxy::restart,
    );
}
