//! A small blocking HTTP client for the CLI's `--server` and `--url` modes.

use std::time::Duration;

/// A server base URL and optional bearer token.
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// A failed request: transport error or a non-success status with the server's message.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url}: HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent,
        }
    }

    /// GET `path` (with query); `auth` overrides the bearer token's Authorization header.
    pub fn get(&self, path: &str, auth: Option<&str>) -> Result<String, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.get(&url);
        if let Some(a) = self.authorization(auth) {
            req = req.header("Authorization", &a);
        }
        Self::finish(&url, req.call())
    }

    /// POST `body` (JSON) to `path`.
    pub fn post(&self, path: &str, body: &str) -> Result<String, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json");
        if let Some(a) = self.authorization(None) {
            req = req.header("Authorization", &a);
        }
        Self::finish(&url, req.send(body))
    }

    fn authorization(&self, auth: Option<&str>) -> Option<String> {
        auth.map(str::to_string)
            .or_else(|| self.token.as_ref().map(|t| format!("Bearer {t}")))
    }

    fn finish(
        url: &str,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<String, ClientError> {
        let mut resp = r.map_err(|e| ClientError::Transport {
            url: url.to_string(),
            message: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .map_err(|e| ClientError::Transport {
                url: url.to_string(),
                message: e.to_string(),
            })?;
        if (200..300).contains(&status) {
            Ok(text)
        } else {
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or(text);
            Err(ClientError::Status {
                url: url.to_string(),
                status,
                message,
            })
        }
    }
}
