//! Asking the manager for data (`custom` requests, as RedPepper's agent asks them) and
//! the operation that shows it: `data.Show(name)`.

use redpepper_core::{Session, Value};

use super::result::{output_text, OpError, OpResult};
use super::OpArgs;

/// `custom(NAME, **kwargs)` on the manager this agent is connected to: NAME the only
/// positional argument, every parameter a keyword, as RedPepper's agent calls it (so
/// the Python manager answers too). An error answer is RedPepper's `RPCError`.
pub(super) async fn custom(
    session: Option<&Session>,
    name: &str,
    kwargs: Vec<(&str, Value)>,
) -> Result<Value, OpError> {
    let session = session.ok_or_else(|| OpError::Agent(format!("no manager to ask for {name}")))?;
    let kwargs = kwargs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    session
        .call("custom", vec![Value::from(name)], kwargs)
        .await
        .map_err(OpError::call)
}

/// `data.Show(name)`: the agent's data item `name` (a string) as output; unchanged.
pub(super) async fn show(
    session: Option<&Session>,
    args: &OpArgs<'_>,
) -> Result<OpResult, OpError> {
    let name = args.get(0, "name").cloned().unwrap_or(Value::Nil);
    let mut r = OpResult::new(format!("data.Show({})", super::pyfmt::str_of(&name)));
    let data = custom(session, "data", vec![("name", name)]).await?;
    r.add(&output_text(Some(&data))?);
    Ok(r)
}
