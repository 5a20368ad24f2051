//! The JSON line form of a signed event (docs/FORMAT.md §2, "JSON line"): what `consentlog
//! sign` prints and `append` and `POST /v1/events` read, and the body of a batch.

use serde::{Deserialize, Serialize};

use super::{ConsentEvent, SignedEvent, SIGNATURE_LEN};
use crate::codec;
use crate::hash::{hex_array, hex_array_opt};
use crate::reject::{MalformedEvent, Reject};

/// The JSON line form of a signed event (what `consentlog sign` prints and `append` reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventJson {
    pub version: u8,
    pub kind: String,
    pub signer: String,
    pub log: String,
    #[serde(with = "hex_array")]
    pub subject: [u8; 32],
    pub controller: String,
    pub purpose: String,
    pub decision: String,
    pub seq: u64,
    #[serde(with = "hex_array_opt")]
    pub prev: Option<[u8; 32]>,
    pub issued_at: u64,
    /// Required, as null when absent (like every field).
    #[serde(deserialize_with = "Option::deserialize")]
    pub expires_at: Option<u64>,
    #[serde(with = "hex_array_opt")]
    pub notice: Option<[u8; 32]>,
    #[serde(with = "hex_array")]
    pub signature: [u8; 64],
}

impl From<&SignedEvent> for EventJson {
    fn from(s: &SignedEvent) -> Self {
        let e = &s.event;
        EventJson {
            version: e.version,
            kind: match e.kind {
                super::KIND_DECISION => "decision".into(),
                k => k.to_string(),
            },
            signer: match e.signer {
                super::SIGNER_SUBJECT => "subject".into(),
                k => k.to_string(),
            },
            log: e.log.clone(),
            subject: e.subject,
            controller: e.controller.clone(),
            purpose: e.purpose.clone(),
            decision: match e.decision() {
                Some(d) => d.as_str().to_string(),
                None => e.decision.to_string(),
            },
            seq: e.seq,
            prev: e.prev,
            issued_at: e.issued_at,
            expires_at: e.expires_at,
            notice: e.notice,
            signature: s.signature,
        }
    }
}

impl EventJson {
    /// Converts to the binary form; refuses an unknown decision spelling and an event whose
    /// binary form would exceed the decoder's limit (so every accepted line round-trips).
    pub fn to_signed(&self) -> Result<SignedEvent, Reject> {
        let text_len = self.log.len() + self.controller.len() + self.purpose.len();
        let too_large = MalformedEvent::TooLarge {
            max: codec::MAX_ENCODED,
        };
        if text_len > codec::MAX_ENCODED {
            return Err(too_large.into());
        }
        let decision = match self.decision.as_str() {
            "opt-in" => 1,
            "opt-out" => 0,
            other => return Err(Reject::DecisionName(other.to_string())),
        };
        let kind = match self.kind.as_str() {
            "decision" => super::KIND_DECISION,
            other => return Err(Reject::KindName(other.to_string())),
        };
        let signer = match self.signer.as_str() {
            "subject" => super::SIGNER_SUBJECT,
            other => return Err(Reject::SignerName(other.to_string())),
        };
        let ev = SignedEvent::from_parts(
            ConsentEvent {
                version: self.version,
                kind,
                signer,
                log: self.log.clone(),
                subject: self.subject,
                controller: self.controller.clone(),
                purpose: self.purpose.clone(),
                decision,
                seq: self.seq,
                prev: self.prev,
                issued_at: self.issued_at,
                expires_at: self.expires_at,
                notice: self.notice,
            },
            self.signature,
        );
        if ev.as_bytes().len() - SIGNATURE_LEN > codec::MAX_ENCODED {
            return Err(too_large.into());
        }
        Ok(ev)
    }

    /// Parses one JSON line strictly.
    pub fn parse(line: &str) -> Result<SignedEvent, Reject> {
        let j: EventJson = crate::hash::json_object(line).map_err(MalformedEvent::Json)?;
        j.to_signed()
    }
}

/// Why a batch body was refused as a whole: it begins with `[` but is not a JSON array.
#[derive(Debug, thiserror::Error)]
#[error("body is not a JSON array: {0}")]
pub struct BatchError(#[source] pub serde_json::Error);

/// How many events a batch body holds (non-blank NDJSON lines, or the elements of a JSON
/// array), found without parsing any event: so that an oversized batch is refused before any
/// work or memory is spent on its events.
pub fn count_batch(text: &str) -> Result<usize, BatchError> {
    if !text.trim_start().starts_with('[') {
        return Ok(text.lines().filter(|l| !l.trim().is_empty()).count());
    }
    let items: Vec<&serde_json::value::RawValue> =
        serde_json::from_str(text).map_err(BatchError)?;
    Ok(items.len())
}

/// Parses the body of a batch: a JSON array of event objects, or NDJSON lines. Each element is
/// parsed from its own text exactly like an NDJSON line, so a repeated field is refused either
/// way. Fails as a whole only when the body is not a JSON array (or not text).
pub fn parse_batch(text: &str) -> Result<Vec<Result<SignedEvent, Reject>>, BatchError> {
    if !text.trim_start().starts_with('[') {
        return Ok(text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(EventJson::parse)
            .collect());
    }
    let items: Vec<Box<serde_json::value::RawValue>> =
        serde_json::from_str(text).map_err(BatchError)?;
    Ok(items
        .iter()
        .map(|raw| {
            if !raw.get().trim_start().starts_with('{') {
                return Err(MalformedEvent::NotObject.into());
            }
            EventJson::parse(raw.get())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::JsonError;
    use crate::testutil::{Log, T0};

    fn line(ev: &SignedEvent) -> serde_json::Value {
        serde_json::to_value(EventJson::from(ev)).unwrap()
    }

    /// A batch is counted without parsing its events; the count is the number `parse_batch`
    /// gives, in both forms.
    #[test]
    fn batches_are_counted_without_parsing() {
        let log = Log::new();
        let good = line(&log.event(None, true, T0)).to_string();
        for body in [
            format!("{good}\n\n{good}\n  \nx\n"),
            format!("[{good}, {good}, 1]"),
            "x\n".repeat(1000),
            String::new(),
        ] {
            assert_eq!(
                count_batch(&body).unwrap(),
                parse_batch(&body).unwrap().len(),
                "{body:.40}"
            );
        }
        assert!(count_batch("[1, 2").is_err());
    }

    #[test]
    fn json_line_errors() {
        let log = Log::new();
        let ev = log.event(None, true, T0);
        let good = line(&ev);
        assert_eq!(EventJson::parse(&good.to_string()), Ok(ev.clone()));

        let array = format!("[{good}]");
        assert_eq!(
            EventJson::parse(&array),
            Err(Reject::Malformed(MalformedEvent::Json(JsonError::Array)))
        );
        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove("seq");
        assert!(matches!(
            EventJson::parse(&missing.to_string()),
            Err(Reject::Malformed(MalformedEvent::Json(JsonError::Parse(m)))) if m.contains("missing field `seq`")
        ));
        let mut big = good.clone();
        big["purpose"] = "p".repeat(codec::MAX_ENCODED).into();
        let too_large = Reject::Malformed(MalformedEvent::TooLarge {
            max: codec::MAX_ENCODED,
        });
        assert_eq!(EventJson::parse(&big.to_string()), Err(too_large.clone()));
        assert_eq!(
            too_large.to_string(),
            format!(
                "malformed event: event is larger than {} bytes",
                codec::MAX_ENCODED
            )
        );
        let mut near = good.clone();
        near["purpose"] = "p".repeat(codec::MAX_ENCODED - 100).into();
        assert_eq!(EventJson::parse(&near.to_string()), Err(too_large));
        let mut decision = good.clone();
        decision["decision"] = "yes".into();
        assert_eq!(
            EventJson::parse(&decision.to_string()),
            Err(Reject::DecisionName("yes".into()))
        );
    }

    #[test]
    fn batch_errors() {
        let log = Log::new();
        let ev = log.event(None, true, T0);
        let good = line(&ev);
        let out = parse_batch(&format!("[{good}, 5]")).unwrap();
        assert_eq!(out[0], Ok(ev.clone()));
        assert_eq!(out[1], Err(Reject::Malformed(MalformedEvent::NotObject)));
        let e = parse_batch("[{").unwrap_err();
        assert!(
            e.to_string().starts_with("body is not a JSON array: "),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(
            parse_batch(&format!("{good}\n\n{good}\n")).unwrap().len(),
            2
        );
    }
}
