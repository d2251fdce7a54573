//! Operating a running manager (issue 16): SIGHUP reload and revocation, health
//! without the token, audit lines, `--check-config`, logs without colour codes.
//!
//! - `reload`: one manager, two agents, the admin API on; agents.yml, the token and
//!   the certificate are changed on disk and applied by SIGHUP.
//! - `check`: `--check-config` of both programs on good and bad configurations.

mod check;
mod reload;

use std::path::Path;
use std::process::{Command, Stdio};

use redpepper_tests::bin;

/// Write `text` to `path` with mode 0600.
fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// HTTP status of `method url` (with `token` as bearer, if any), by curl.
fn http_status(method: &str, url: &str, token: Option<&str>) -> u16 {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        method,
        url,
    ]);
    if let Some(token) = token {
        cmd.arg("-H").arg(format!("Authorization: Bearer {token}"));
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("curl: {e}"));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl {method} {url}: {out:?}"))
}

/// `redpepper-manager` or `redpepper-agent` `--check-config` with `args`: exit code,
/// stdout, stderr.
fn check_config(program: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin(program))
        .arg("--check-config")
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
