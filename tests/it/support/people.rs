//! People and their events: one [`Person`] type, and [`Draft`], the builder every test event
//! goes through (instead of `ConsentEvent { … }` literals).

use consentlog::core::event::{
    ConsentEvent, SignedEvent, EVENT_VERSION, KIND_DECISION, SIGNER_SUBJECT,
};
use consentlog::core::hash::{to_hex, Hash};
use consentlog::core::request::{sign_request, Target};
use ed25519_dalek::SigningKey;

use super::{now_ms, CONTROLLER, ORIGIN, PURPOSE};

/// Where a person's signed request goes: the log's origin and the server's public URL (the
/// audience). [`Server::request_to`](super::Server::request_to) gives a server's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestTo {
    pub origin: String,
    pub audience: String,
}

/// A person: their key, and the (controller, purpose) chain they are on (where the next event
/// of [`Person::event`] goes: its seq and the hash of the event before it).
#[derive(Clone)]
pub struct Person {
    pub key: SigningKey,
    pub subject: [u8; 32],
    pub controller: String,
    pub purpose: String,
    /// The seq of the chain's next event.
    pub seq: u64,
    /// The event hash of the chain's last event.
    pub prev: Option<Hash>,
}

impl Default for Person {
    fn default() -> Self {
        Person::new()
    }
}

impl Person {
    /// A fresh key on a fresh (CONTROLLER, PURPOSE) chain.
    pub fn new() -> Person {
        Person::on(CONTROLLER, PURPOSE)
    }

    /// A fresh key on a fresh (controller, purpose) chain.
    pub fn on(controller: &str, purpose: &str) -> Person {
        Self::with_key(consentlog::keyfile::generate(), controller, purpose)
    }

    /// `key` on a fresh (controller, purpose) chain.
    pub fn with_key(key: SigningKey, controller: &str, purpose: &str) -> Person {
        Person {
            subject: key.verifying_key().to_bytes(),
            key,
            controller: controller.to_string(),
            purpose: purpose.to_string(),
            seq: 0,
            prev: None,
        }
    }

    /// The same key, another (controller, purpose), a fresh chain.
    pub fn other(&self, controller: &str, purpose: &str) -> Person {
        Self::with_key(self.key.clone(), controller, purpose)
    }

    pub fn subject(&self) -> [u8; 32] {
        self.subject
    }

    pub fn hex(&self) -> String {
        to_hex(&self.subject)
    }

    /// The state key of (this person, controller, purpose) in ledger `l` (only the log's VRF
    /// key computes it).
    pub fn state_key(
        &self,
        l: &consentlog::ledger::Ledger,
        controller: &str,
        purpose: &str,
    ) -> Hash {
        l.state_key_or_prove(&self.subject, controller, purpose)
            .expect("state key")
            .0
    }

    /// The next event of the chain, to be changed and signed: an opt-in under ORIGIN, issued
    /// now, no expiry, no notice.
    pub fn event(&self) -> Draft<'_> {
        Draft {
            key: &self.key,
            ev: ConsentEvent {
                version: EVENT_VERSION,
                kind: KIND_DECISION,
                signer: SIGNER_SUBJECT,
                log: ORIGIN.to_string(),
                subject: self.subject,
                controller: self.controller.clone(),
                purpose: self.purpose.clone(),
                decision: 1,
                seq: self.seq,
                prev: self.prev,
                issued_at: now_ms(),
                expires_at: None,
                notice: None,
            },
        }
    }

    /// `ev` signed with this person's key.
    pub fn sign(&self, ev: ConsentEvent) -> SignedEvent {
        ev.sign(&self.key)
    }

    /// The chain's next event, signed (the first, unless the chain moved on).
    pub fn first(&self) -> SignedEvent {
        self.event().sign()
    }

    /// The event continuing `prev` with `decision`, to be changed and signed.
    pub fn next_event(&self, prev: &SignedEvent, decision: u8) -> Draft<'_> {
        self.event().after(prev).decision(decision)
    }

    /// The event continuing `prev` with `decision`, signed.
    pub fn next(&self, prev: &SignedEvent, decision: u8) -> SignedEvent {
        self.next_event(prev, decision).sign()
    }

    /// The chain's next event for `log`, signed, without moving the chain on.
    pub fn make(&self, log: &str, opt_in: bool) -> SignedEvent {
        self.event().log(log).opt_in(opt_in).sign()
    }

    /// Moves the chain on past `ev` (once it is logged).
    pub fn commit(&mut self, ev: &SignedEvent) {
        self.seq = ev.event.seq + 1;
        self.prev = Some(ev.event_hash());
    }

    /// The chain's next event for `log`, signed; the chain moves on.
    pub fn step(&mut self, log: &str, opt_in: bool) -> SignedEvent {
        let ev = self.make(log, opt_in);
        self.commit(&ev);
        ev
    }

    /// An Authorization header for a request to `to`, signed by this person: `method`,
    /// `path` (with query) and `body`, at `time`, with `nonce`.
    pub fn sign_request_with(
        &self,
        to: &RequestTo,
        (method, path, body): (&str, &str, &[u8]),
        time: u64,
        nonce: &[u8; 32],
    ) -> String {
        let target = Target::new(&to.origin, &to.audience, method, path, body);
        sign_request(&self.key, &target, time, nonce)
    }

    /// An Authorization header for a bodiless request to `to` signed by this person at
    /// `time`, with a fresh random nonce.
    pub fn sign_request_at(&self, to: &RequestTo, method: &str, path: &str, time: u64) -> String {
        let nonce = consentlog::keyfile::random32();
        self.sign_request_with(to, (method, path, b""), time, &nonce)
    }

    /// An Authorization header for a bodiless request to `to` signed by this person now, with
    /// a fresh random nonce.
    pub fn sign_request(&self, to: &RequestTo, method: &str, path: &str) -> String {
        self.sign_request_at(to, method, path, now_ms())
    }

    /// `/v1/heads?...` for this chain.
    pub fn heads_path(&self) -> String {
        format!(
            "/v1/heads?subject={}&controller={}&purpose={}",
            self.hex(),
            self.controller,
            self.purpose
        )
    }

    /// `/v1/proofs/consent?...` for this chain, optionally at a time.
    pub fn consent_path(&self, at: Option<u64>) -> String {
        let mut p = format!(
            "/v1/proofs/consent?subject={}&controller={}&purpose={}",
            self.hex(),
            self.controller,
            self.purpose
        );
        if let Some(at) = at {
            p.push_str(&format!("&at={at}"));
        }
        p
    }
}

/// An event being built by a person: every field can be set; [`Draft::sign`] signs it with
/// the person's key, [`Draft::build`] gives it unsigned.
#[derive(Clone)]
pub struct Draft<'a> {
    key: &'a SigningKey,
    pub ev: ConsentEvent,
}

impl Draft<'_> {
    pub fn version(mut self, v: u8) -> Self {
        self.ev.version = v;
        self
    }
    pub fn log(mut self, log: &str) -> Self {
        self.ev.log = log.to_string();
        self
    }
    pub fn subject(mut self, subject: [u8; 32]) -> Self {
        self.ev.subject = subject;
        self
    }
    pub fn controller(mut self, c: &str) -> Self {
        self.ev.controller = c.to_string();
        self
    }
    pub fn purpose(mut self, p: &str) -> Self {
        self.ev.purpose = p.to_string();
        self
    }
    pub fn decision(mut self, d: u8) -> Self {
        self.ev.decision = d;
        self
    }
    pub fn opt_in(self, yes: bool) -> Self {
        self.decision(u8::from(yes))
    }
    pub fn seq(mut self, seq: u64) -> Self {
        self.ev.seq = seq;
        self
    }
    pub fn prev(mut self, prev: Option<Hash>) -> Self {
        self.ev.prev = prev;
        self
    }
    /// Continues `prev`: its fields, seq + 1, prev = its event hash; issued now, no expiry.
    pub fn after(mut self, prev: &SignedEvent) -> Self {
        self.ev = ConsentEvent {
            seq: prev.event.seq + 1,
            prev: Some(prev.event_hash()),
            issued_at: self.ev.issued_at,
            expires_at: None,
            ..prev.event.clone()
        };
        self
    }
    /// Continues the head of a ledger's chain (seq 0 and no prev without one).
    pub fn head(mut self, head: Option<consentlog::core::rules::Head>) -> Self {
        self.ev.seq = head.map_or(0, |h| h.seq + 1);
        self.ev.prev = head.map(|h| h.event_hash);
        self
    }
    pub fn issued_at(mut self, t: u64) -> Self {
        self.ev.issued_at = t;
        self
    }
    pub fn expires_at(mut self, t: Option<u64>) -> Self {
        self.ev.expires_at = t;
        self
    }
    pub fn notice(mut self, n: Option<Hash>) -> Self {
        self.ev.notice = n;
        self
    }
    /// The state key of the event's (subject, controller, purpose) in ledger `l`.
    pub fn state_key(&self, l: &consentlog::ledger::Ledger) -> Hash {
        super::ledger::key_of(l, &self.ev)
    }
    /// The event, unsigned.
    pub fn build(self) -> ConsentEvent {
        self.ev
    }
    /// The event signed with the person's key.
    pub fn sign(self) -> SignedEvent {
        self.ev.sign(self.key)
    }
}
