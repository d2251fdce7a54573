//! `disconnect`: end an agent's session now (`DELETE /v1/agents/{id}`). The manager
//! says Bye "disconnected by an operator"; the agent may reconnect at once if
//! agents.yml still admits it (remove its entry and reload to keep it out).

use reqwest::Method;

use crate::client::AdminClient;
use crate::commands::{print_json, query_escape};
use crate::{CtlError, EXIT_OK};

/// `disconnect AGENT`.
pub async fn disconnect(client: &AdminClient, agent: &str, json: bool) -> Result<i32, CtlError> {
    let path = format!("/v1/agents/{}", query_escape(agent));
    let body = client.ok_json(Method::DELETE, &path, None).await?;
    if json {
        print_json(&body);
    } else {
        println!("{agent}: disconnected");
    }
    Ok(EXIT_OK)
}
