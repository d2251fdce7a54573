//! kill -9 nginx (TLS-terminating reverse proxy in front of a `websocket.tls: false`
//! manager) while a call to the WebSocket agent behind it is in flight: the caller gets
//! `502 connection_lost` at once; nginx restarted on the same port, the agent comes back
//! by itself and a new call succeeds.

use redpepper_tests::nginx::{Nginx, NginxConfig};

use super::{builder, kill_mid_call};

#[test]
fn kill_9_nginx_mid_call() {
    // No pings from the manager: they would end the frozen agent's session first.
    let mut f = builder(&["a1"])
        .ping_interval(0)
        .no_tls()
        .transports(&["websocket"])
        .websocket("  tls: false\n  trusted_proxies: [127.0.0.3/32]\n")
        .build();
    f.spawn_manager();
    let mut config = NginxConfig::new(&f.certs, f.manager().ws_addr.unwrap());
    config.proxy_bind = Some("127.0.0.3".parse().unwrap());
    let mut nginx = Nginx::start(&f.path("nginx"), config);
    let agent = f.spawn_agent_with(
        "a1",
        &format!(
            "transport: websocket\nmanager_host: localhost\nwebsocket:\n  url: {}\n",
            nginx.url()
        ),
    );
    let m = f.manager();
    let (line, _) = m.connected("a1", 0);

    // SIGKILL to the service's process group: every connection through it breaks.
    kill_mid_call(m, &agent, line, &mut nginx, Nginx::stop, Nginx::restart);
}
