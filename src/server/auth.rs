//! Who may read what: reader tokens (optionally limited to controllers), auditor tokens, and
//! requests signed by the person. Missing credentials get 401, wrong or insufficient ones 403.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use axum::http::{header, HeaderMap};

use super::error::ApiError;
use crate::core::hash::Hash;
use crate::core::request::{check_request, SCHEME};
use crate::ledger::clock;

/// Tokens are kept as BLAKE3 hashes, so lookups do not compare secrets byte by byte.
fn token_id(t: &str) -> Hash {
    *blake3::hash(t.as_bytes()).as_bytes()
}

/// The server's credentials.
#[derive(Default, Clone)]
pub struct Auth {
    /// Reader token → the controllers it may ask about (None: all).
    readers: HashMap<Hash, Option<HashSet<String>>>,
    auditors: HashSet<Hash>,
}

impl Auth {
    pub fn add_reader(&mut self, token: &str, controllers: Option<HashSet<String>>) {
        self.readers.insert(token_id(token), controllers);
    }
    pub fn add_auditor(&mut self, token: &str) {
        self.auditors.insert(token_id(token));
    }

    /// Loads a tokens file: lines `TOKEN [controller,controller…]`; `#` starts a comment; a
    /// token with no controllers may ask about any.
    pub fn load_tokens_file(&mut self, path: &Path) -> Result<usize, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut n = 0;
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let token = parts.next().expect("non-empty");
            let controllers = parts.next().map(|list| {
                list.split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect()
            });
            if parts.next().is_some() {
                return Err(format!(
                    "{}:{}: expected `TOKEN [controllers]`",
                    path.display(),
                    i + 1
                ));
            }
            self.add_reader(token, controllers);
            n += 1;
        }
        Ok(n)
    }

    fn authorization(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
        match headers.get(header::AUTHORIZATION) {
            None => Ok(None),
            Some(v) => v.to_str().map(Some).map_err(|_| ApiError::forbidden()),
        }
    }

    fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
        Ok(Self::authorization(headers)?.and_then(|v| v.strip_prefix("Bearer ")))
    }

    /// A reader token allowed to ask about `controller`.
    pub fn require_reader(&self, headers: &HeaderMap, controller: &str) -> Result<(), ApiError> {
        let token = match Self::authorization(headers)? {
            None => return Err(ApiError::unauthorized()),
            Some(v) => v.strip_prefix("Bearer ").ok_or_else(ApiError::forbidden)?,
        };
        match self.readers.get(&token_id(token)) {
            Some(None) => Ok(()),
            Some(Some(allowed)) if allowed.contains(controller) => Ok(()),
            _ => Err(ApiError::forbidden()),
        }
    }

    /// Any valid reader token.
    pub fn require_any_reader(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let token = match Self::authorization(headers)? {
            None => return Err(ApiError::unauthorized()),
            Some(v) => v.strip_prefix("Bearer ").ok_or_else(ApiError::forbidden)?,
        };
        if self.readers.contains_key(&token_id(token)) {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// An auditor token.
    pub fn require_auditor(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match Self::bearer(headers)? {
            None if Self::authorization(headers)?.is_none() => Err(ApiError::unauthorized()),
            Some(t) if self.auditors.contains(&token_id(t)) => Ok(()),
            _ => Err(ApiError::forbidden()),
        }
    }

    /// A request signed by `subject` for this method and path (with query).
    pub fn require_subject(
        &self,
        headers: &HeaderMap,
        method: &str,
        path_and_query: &str,
        subject: &[u8; 32],
    ) -> Result<(), ApiError> {
        let v = Self::authorization(headers)?.ok_or_else(ApiError::unauthorized)?;
        if !v.starts_with(SCHEME) {
            return Err(ApiError::forbidden());
        }
        match check_request(v, method, path_and_query, clock::now_ms()) {
            Ok(s) if s == *subject => Ok(()),
            _ => Err(ApiError::forbidden()),
        }
    }

    /// Either a reader token for `controller` or a request signed by `subject`.
    pub fn require_reader_or_subject(
        &self,
        headers: &HeaderMap,
        controller: &str,
        method: &str,
        path_and_query: &str,
        subject: &[u8; 32],
    ) -> Result<(), ApiError> {
        match Self::authorization(headers)? {
            Some(v) if v.starts_with(SCHEME) => {
                self.require_subject(headers, method, path_and_query, subject)
            }
            _ => self.require_reader(headers, controller),
        }
    }
}
