//! Shared by the tests with the real RedPepper 0.3.4 (Python): a fleet knowing agent
//! `a1` and a Python manager's settings for it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use redpepper_tests::fleet::{secret_of, Fleet};
use redpepper_tests::serde_json::Value;
use redpepper_tests::{PyAgent, PyAgentConfig, PyManager, PyManagerConfig, TIMEOUT};

/// The one agent of these tests.
pub const ID: &str = "a1";

/// Agent [`ID`]'s secret.
pub fn secret() -> String {
    secret_of(ID)
}

/// A fleet knowing agent [`ID`] (scratch directory, certificates) and a Python
/// manager's settings with the same `agents.yml` entry.
pub fn setup() -> (Fleet, PyManagerConfig) {
    let fleet = Fleet::builder().agent(ID).build();
    let config = fleet.py_manager_config();
    (fleet, config)
}

/// The Python agent's settings (in `agent/`) as [`ID`] with `secret`, dialling `port`.
pub fn agent_config(fleet: &Fleet, port: u16, secret: &str) -> PyAgentConfig {
    fleet.py_agent_config("agent", port, ID, secret)
}

/// A Python manager and a Python agent connected to it.
pub fn connected_pair() -> (Fleet, PyManager, PyAgent) {
    let (fleet, config) = setup();
    let manager = PyManager::start(&config);
    let agent = PyAgent::start(&agent_config(&fleet, manager.port(), &secret()));
    agent.wait_connected(TIMEOUT).unwrap();
    (fleet, manager, agent)
}

/// Operation `op` with `kwargs` run by the Python `manager` on agent [`ID`]: its
/// `command_result`, which says it succeeded.
pub fn run_succeeds(manager: &PyManager, op: &str, kwargs: Value) -> Value {
    let result = manager
        .command(ID, op, kwargs, TIMEOUT)
        .unwrap_or_else(|e| panic!("{op}: {e}"));
    assert_eq!(result["success"], true, "{op}: {result}");
    result
}
