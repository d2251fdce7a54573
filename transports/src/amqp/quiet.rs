//! Rate-limited log lines for what any broker user can trigger at will (stray messages,
//! malformed hellos, messages from another broker user, a busy manager): one line per
//! 10 seconds and kind ([`LogLimit`]'s default), carrying the number of occurrences
//! left unlogged since the previous line, so a flood of junk cannot flood the logs.

pub(crate) use redpepper_core::quiet::LogLimit;

/// The manager's rate-limited log lines, one limit per kind.
#[derive(Debug, Default)]
pub(crate) struct ManagerNoise {
    /// A message for a session we do not know.
    pub(crate) unknown: LogLimit,
    /// A message from a broker user other than the session's.
    pub(crate) foreign: LogLimit,
    /// A message that is not ours (no or invalid session id, unknown type).
    pub(crate) not_ours: LogLimit,
    /// A hello refused for what it carries (no user_id or reply_to, too large...).
    pub(crate) bad_hello: LogLimit,
    /// A hello turned away because the manager is busy.
    pub(crate) busy: LogLimit,
    /// A session closed for what its peer sent (over its byte budget, unread backlog).
    pub(crate) closing: LogLimit,
}

/// An agent inbox's rate-limited log lines.
#[derive(Debug, Default)]
pub(crate) struct AgentNoise {
    /// A message that is not ours.
    pub(crate) not_ours: LogLimit,
    /// A message for another session.
    pub(crate) other_session: LogLimit,
    /// A message from a broker user other than the manager's.
    pub(crate) foreign: LogLimit,
}
