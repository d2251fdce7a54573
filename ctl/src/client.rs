//! [`AdminClient`]: JSON requests and line streams to the admin API.
//!
//! reqwest over rustls with the ring provider, given as a finished rustls
//! configuration (no process-wide provider is installed or needed).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, Response, StatusCode};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde_json::Value;

use crate::error::CtlError;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one manager's admin API.
#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, CtlError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let bad = |reason: String| CtlError::File {
            what: "CA file",
            path: path.to_owned(),
            reason,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("contains no PEM certificate".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CtlError::Usage(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Lines of a streamed response body (NDJSON, server-sent events).
pub struct Lines {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: Vec<u8>,
    url: String,
    headers: reqwest::header::HeaderMap,
}

impl Lines {
    /// A header of the response, if present and text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// The next line without its line ending; `None` at the end of the body.
    pub async fn next_line(&mut self) -> Result<Option<String>, CtlError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    return Err(CtlError::Unreachable {
                        url: self.url.clone(),
                        reason: format!("connection lost while reading: {}", reason(&e)),
                    })
                }
                None if self.buf.is_empty() => return Ok(None),
                None => {
                    let rest = std::mem::take(&mut self.buf);
                    return Ok(Some(String::from_utf8_lossy(&rest).into_owned()));
                }
            }
        }
    }
}

/// The innermost cause of a reqwest error, which is the one that says what happened.
fn reason(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

impl AdminClient {
    /// A client for the API at `url` (`http://HOST:PORT`), sending `token`, trusting
    /// the system's CAs and those in `ca_file`.
    pub fn new(url: String, token: String, ca_file: Option<&Path>) -> Result<Self, CtlError> {
        // Direct connections only: the admin API is an internal endpoint, and a proxy
        // from the environment would surprise more often than help.
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .tls_backend_preconfigured(tls_config(ca_file)?)
            .build()
            .map_err(|e| CtlError::Usage(format!("HTTP client: {}", reason(&e))))?;
        Ok(Self { http, url, token })
    }

    /// The API's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<Response, CtlError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(body);
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let resp = req.send().await.map_err(|e| CtlError::Unreachable {
            url: self.url.clone(),
            reason: if e.is_timeout() {
                "no answer in time".to_owned()
            } else {
                reason(&e)
            },
        })?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(CtlError::Unauthorized {
                url: self.url.clone(),
            });
        }
        Ok(resp)
    }

    /// A JSON request; the status and the JSON body, whatever the status (but 401).
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<(StatusCode, Value), CtlError> {
        let resp = self.send(method, path, body, timeout).await?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| CtlError::Unreachable {
            url: self.url.clone(),
            reason: reason(&e),
        })?;
        let json = serde_json::from_slice(&bytes).map_err(|_| CtlError::Api {
            status: status.as_u16(),
            code: code_of_status(status).unwrap_or("not_json").into(),
            message: format!(
                "unexpected answer from {}{path}: {}",
                self.url,
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ),
        })?;
        Ok((status, json))
    }

    /// A JSON request whose answer must be a success.
    pub async fn ok_json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CtlError> {
        let (status, json) = self.json(method, path, body, None).await?;
        if status.is_success() {
            Ok(json)
        } else {
            Err(api_error(status, &json))
        }
    }

    /// A GET whose body is text (`/metrics`).
    pub async fn text(&self, path: &str) -> Result<String, CtlError> {
        let resp = self.send(Method::GET, path, None, None).await?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| CtlError::Unreachable {
            url: self.url.clone(),
            reason: reason(&e),
        })?;
        if !status.is_success() {
            let json = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Err(api_error(status, &json));
        }
        Ok(text)
    }

    /// A request whose successful answer is read line by line.
    pub async fn lines(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Lines, CtlError> {
        let resp = self.send(method, path, body, None).await?;
        let status = resp.status();
        if !status.is_success() {
            let json = resp.json::<Value>().await.unwrap_or(Value::Null);
            return Err(api_error(status, &json));
        }
        Ok(Lines {
            headers: resp.headers().clone(),
            body: resp.bytes_stream().boxed(),
            buf: Vec::new(),
            url: self.url.clone(),
        })
    }
}

/// The API's code for an error status, for an answer without a JSON body (a manager
/// older than the one that makes every error `{code, error}`, or a proxy).
fn code_of_status(status: StatusCode) -> Option<&'static str> {
    Some(match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        s if s.is_server_error() => "internal",
        _ => return None,
    })
}

/// The error of a non-success answer with the API's `{code, error}` body (the code
/// comes from the status when the body has none).
pub fn api_error(status: StatusCode, json: &Value) -> CtlError {
    CtlError::Api {
        status: status.as_u16(),
        code: json["code"]
            .as_str()
            .or_else(|| code_of_status(status))
            .unwrap_or("unknown")
            .to_owned(),
        message: json["error"]
            .as_str()
            .map_or_else(|| format!("the manager answered {status}"), str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_answers_show_the_api_code() {
        for (status, code) in [
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            (StatusCode::BAD_REQUEST, "bad_request"),
        ] {
            let body = json!({"code": code, "error": "what was wrong"});
            let shown = api_error(status, &body).to_string();
            let want = format!("what was wrong (HTTP {}, {code})", status.as_u16());
            assert_eq!(shown, want);
            // A body without JSON (an older manager, a proxy): the code from the status.
            let shown = api_error(status, &Value::Null).to_string();
            assert!(shown.ends_with(&format!("{code})")), "{shown}");
        }
    }
}
