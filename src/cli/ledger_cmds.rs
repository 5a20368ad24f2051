//! Commands run by the ledger's operator on its directory.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use super::{fail, print_json, CmdResult, Failure, Triple};
use crate::core::event::{ConsentEvent, EventJson};
use crate::core::export::{Header, Writer};
use crate::core::hash::to_hex;
use crate::keyfile;
use crate::ledger::{clock, Ledger, Options, Outcome, CHUNK};
use crate::store::Engine;

/// Arguments of `grant` and `revoke`.
#[derive(Args, Debug)]
pub struct DecideArgs {
    /// A local ledger directory [default: $CONSENTLOG_DIR, else $CONSENTLOG_SERVER]
    #[arg(long, conflicts_with = "server")]
    pub dir: Option<PathBuf>,
    /// A consentlog server's base URL, e.g. http://127.0.0.1:8080
    #[arg(long)]
    pub server: Option<String>,
    /// The person's secret key file (`consentlog keygen --out FILE`)
    #[arg(long)]
    pub key: PathBuf,
    /// With --server: the log's public key (64 hex digits or log.pub, as `serve` prints it),
    /// to check the receipt the server hands back
    #[arg(long, env = "CONSENTLOG_LOG_KEY")]
    pub log_key: Option<String>,
    #[command(flatten)]
    pub triple: Triple,
    /// Opt-in only: consent lapses at this time (ms since the epoch)
    #[arg(long, value_parser = super::time::parse)]
    pub expires_at: Option<u64>,
}

pub fn open(dir: &Path) -> Result<Ledger, Failure> {
    Ledger::open(dir).map_err(fail)
}

/// [`open`] for a reading command: the store read-only where the engine allows it.
pub fn open_read(dir: &Path) -> Result<Ledger, Failure> {
    Ledger::open_read_only(dir).map_err(fail)
}

pub fn init(dir: &Path, origin: &str, engine: Engine, policy: Option<&Path>) -> CmdResult {
    let mut opts = Options::default();
    if let Some(f) = policy {
        let text = std::fs::read_to_string(f)
            .map_err(|e| fail(format!("--witness-policy {}: {e}", f.display())))?;
        crate::ledger::check_witness_policy(&text)
            .map_err(|e| fail(format!("--witness-policy {}: {e}", f.display())))?;
        opts = opts.witness_policy(text);
    }
    let l = Ledger::init_with(dir, origin, engine, opts).map_err(fail)?;
    eprintln!("created ledger {origin:?} in {}", dir.display());
    if l.genesis().witness_policy.is_some() {
        eprintln!(
            "it declares the witness policy in {} (verifiers require it; serve asks its \
             witnesses)",
            dir.join(crate::ledger::DECLARED_POLICY_FILE).display()
        );
    }
    println!("{}", to_hex(l.public_key().as_bytes()));
    Ok(())
}

/// Prints an outcome line; true if the event is in the log.
pub fn print_outcome(o: &Outcome) -> bool {
    match o {
        Outcome::Accepted(r) | Outcome::Duplicate(r) => {
            print_json(r);
            true
        }
        Outcome::Rejected(r) => {
            print_json(&json!({"error": r.to_string(), "rule": r.code()}));
            false
        }
    }
}

pub fn decide(a: DecideArgs, opt_in: bool) -> CmdResult {
    if !opt_in && a.expires_at.is_some() {
        return Err(fail("--expires-at is only allowed on an opt-in (grant)"));
    }
    let key =
        keyfile::read_person(&a.key, if opt_in { "grant" } else { "revoke" }).map_err(fail)?;
    if let Some(url) = &a.server {
        let Some(log_key) = &a.log_key else {
            return Err(Failure::new(
                64,
                "--server needs --log-key K (the log's public key, as `serve` prints it) to \
                 check the receipt it hands back",
            ));
        };
        let log_key = super::parse_log_key(log_key)?;
        return super::remote::decide(url, &key, &log_key, &a.triple, a.expires_at, opt_in);
    }
    let l = open(a.dir.as_deref().expect("clap: --dir or --server"))?;
    let subject = key.verifying_key().to_bytes();
    let head = l
        .head_of(&subject, &a.triple.controller, &a.triple.purpose)
        .map_err(fail)?;
    let ev = ConsentEvent::next(
        l.origin(),
        subject,
        (&a.triple.controller, &a.triple.purpose),
        opt_in,
        head.map(|h| (h.seq, h.event_hash)),
        clock::now_ms(),
        a.expires_at,
    )
    .sign(&key);
    let out = l.append(vec![Ok(ev.clone())]).map_err(fail)?;
    let (Outcome::Accepted(r) | Outcome::Duplicate(r)) = &out[0] else {
        print_outcome(&out[0]);
        return Err(Failure::new(1, "event rejected"));
    };
    let checked = super::receipt::accept(&l.public_key(), r, &ev, None)?;
    print_json(r);
    eprint!(
        "{}",
        super::receipt::describe(&checked, &ev, &l.public_key())
    );
    Ok(())
}

/// Duplicates named one by one on standard error; the rest are only counted.
const DUPLICATES_SHOWN: usize = 10;

/// Streams NDJSON events in, one chunk at a time, and prints each chunk's receipts as soon as
/// the chunk is durable. A reader thread parses and checks the signatures of the next chunk
/// (on all cores) while the ledger commits the current one. Ends with a signed checkpoint
/// covering the log.
pub fn append(dir: &Path, file: &str) -> CmdResult {
    use rayon::prelude::*;
    use std::io::BufRead;
    use std::io::IsTerminal;
    let l = open(dir)?;
    if file == "-" {
        if std::io::stdin().is_terminal() {
            eprintln!(
                "reading signed events from standard input, one JSON line each (from \
                 `consentlog sign`); end with Ctrl-D"
            );
        } else {
            eprintln!("reading signed events from standard input");
        }
    }
    let input: Box<dyn BufRead + Send> = if file == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(file).map_err(|e| fail(format!("{file}: {e}")))?,
        ))
    };
    let (mut n, mut rejected, mut duplicates) = (0usize, 0usize, 0usize);
    // Progress only on a terminal (indicatif draws nothing to a pipe or file either).
    let pb = if std::io::stderr().is_terminal() {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {human_pos} events appended in {elapsed}",
            )
            .expect("template"),
        );
        pb.tick();
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    // One checked chunk waits while another commits.
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let lr = &l;
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || -> CmdResult {
            let mut lines = input.lines();
            loop {
                let mut chunk = Vec::with_capacity(CHUNK);
                for line in lines.by_ref() {
                    let line = line.map_err(|e| fail(format!("{file}: {e}")))?;
                    if !line.trim().is_empty() {
                        chunk.push(line);
                        if chunk.len() == CHUNK {
                            break;
                        }
                    }
                }
                if chunk.is_empty() {
                    return Ok(());
                }
                let events: Vec<_> = chunk.par_iter().map(|s| EventJson::parse(s)).collect();
                drop(chunk);
                let checked = lr
                    .resolve_keys(crate::ledger::precheck(events, lr.subject_keys()))
                    .map_err(fail)?;
                if tx.send(checked).is_err() {
                    return Ok(()); // the writer stopped on an error of its own
                }
            }
        });
        // A printer thread turns each durable chunk's outcomes into lines (a receipt's
        // tlog-proof text is most of its JSON) on all cores and writes them in order, while
        // this thread commits the next chunk: the JSON fills the cores while a commit waits
        // for its fsync.
        let (to_printer, outcomes_rx) = std::sync::mpsc::sync_channel::<(usize, Vec<Outcome>)>(1);
        let pb = &pb;
        let printer = scope.spawn(move || -> Result<(usize, usize), Failure> {
            let (mut rejected, mut duplicates) = (0usize, 0usize);
            let stdout = std::io::stdout();
            let mut w = BufWriter::new(stdout.lock());
            for (first, outcomes) in outcomes_rx {
                let lines: Vec<String> = outcomes
                    .par_iter()
                    .map(|o| match o {
                        Outcome::Accepted(r) | Outcome::Duplicate(r) => r.to_json(),
                        Outcome::Rejected(r) => serde_json::to_string(
                            &json!({"error": r.to_string(), "rule": r.code()}),
                        )
                        .expect("json"),
                    })
                    .collect();
                pb.suspend(|| -> CmdResult {
                    for (k, (o, line)) in outcomes.iter().zip(&lines).enumerate() {
                        match o {
                            Outcome::Accepted(_) => {}
                            Outcome::Duplicate(_) => {
                                duplicates += 1;
                                if duplicates <= DUPLICATES_SHOWN {
                                    eprintln!(
                                        "event {}: a duplicate, already in the log; nothing \
                                         appended (its receipt is the original's)",
                                        first + k + 1
                                    );
                                }
                            }
                            Outcome::Rejected(_) => rejected += 1,
                        }
                        w.write_all(line.as_bytes()).map_err(fail)?;
                        w.write_all(b"\n").map_err(fail)?;
                    }
                    w.flush().map_err(fail)
                })?;
                pb.inc(outcomes.len() as u64);
            }
            Ok((rejected, duplicates))
        });
        let written = (|| -> CmdResult {
            for checked in rx {
                let first = n;
                n += checked.len();
                let outcomes = l.append_checked(checked).map_err(fail)?;
                if to_printer.send((first, outcomes)).is_err() {
                    return Ok(()); // the printer stopped on an error of its own
                }
            }
            Ok(())
        })();
        // Every durable chunk's receipts are printed, even after a failed append.
        drop(to_printer);
        let printed = printer.join().expect("printer thread").map(|(r, d)| {
            rejected = r;
            duplicates = d;
        });
        let read = reader.join().expect("reader thread");
        written.and(printed).and(read)
    })?;
    pb.finish_and_clear();
    eprintln!(
        "{} of {n} events appended; {duplicates} duplicate(s) already in the log; {rejected} \
         rejected",
        n - duplicates - rejected
    );
    // A map leaf and checkpoint covering what was appended: proofs can use it at once, and
    // the next open checks against it instead of re-reading every leaf after the previous one.
    if l.latest().checkpoint.size < l.size() {
        let cp = l.checkpoint_all().map_err(fail)?;
        eprintln!(
            "appended a map leaf; signed a checkpoint of {} leaves",
            cp.size
        );
    }
    if rejected > 0 {
        return Err(Failure::new(
            1,
            format!("{rejected} of {n} events rejected"),
        ));
    }
    Ok(())
}

pub fn compact(dir: &Path) -> CmdResult {
    match crate::ledger::compact(dir).map_err(fail)? {
        Some((before, after)) => println!("compacted: {before} -> {after} bytes"),
        None => println!("nothing to do: this engine reclaims free space itself"),
    }
    Ok(())
}

pub fn checkpoint(dir: &Path) -> CmdResult {
    let l = open(dir)?;
    let cp = l.checkpoint_waiting().map_err(fail)?;
    eprintln!(
        "appended a map leaf at {}",
        super::time::both(l.latest().map_leaf.time)
    );
    print!("{}", cp.note);
    Ok(())
}

pub fn prove_inclusion(dir: &Path, index: u64, size: Option<u64>) -> CmdResult {
    let l = open_read(dir)?;
    let n = l.size();
    let size_ = size.unwrap_or(n);
    if size_ > n || index >= size_ {
        return Err(fail(format!(
            "{}the log has {n} leaves (indexes 0 to {}); `consentlog leaves --dir {}` lists \
             them",
            if size_ > n {
                format!("--size {size_} is larger than the log: ")
            } else {
                format!("--index {index} is not in a tree of {size_} leaves: ")
            },
            n.saturating_sub(1),
            dir.display()
        )));
    }
    print_json(&l.prove_inclusion(index, size).map_err(fail)?);
    Ok(())
}

pub fn prove_consistency(dir: &Path, old: u64, new: Option<u64>) -> CmdResult {
    let l = open_read(dir)?;
    let n = l.size();
    let new_ = new.unwrap_or(n);
    if new_ > n || old > new_ {
        return Err(fail(format!(
            "{}: the log has {n} leaves now; give --old (and --new) at most {n}, for example \
             the size of a checkpoint you kept (its second line)",
            if new_ > n {
                format!("--new {new_} is larger than the log")
            } else {
                format!("--old {old} is larger than the tree of {new_} leaves")
            }
        )));
    }
    print_json(&l.prove_consistency(old, new).map_err(fail)?);
    Ok(())
}

pub fn leaves(dir: &Path, start: u64, end: Option<u64>) -> CmdResult {
    let l = open_read(dir)?;
    let end = end.unwrap_or_else(|| l.size()).min(l.size());
    let stdout = std::io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    for i in start..end {
        let e = l
            .leaf(i)
            .map_err(fail)?
            .ok_or_else(|| fail(format!("leaf {i} is missing")))?;
        let line = json!({"index": i, "kind": e.kind().as_str(), "leaf": to_hex(&e.to_bytes()), "leaf_hash": to_hex(&e.leaf_hash())});
        writeln!(w, "{line}").map_err(fail)?;
    }
    w.flush().map_err(fail)
}

pub fn export(dir: &Path, out: &Path, openings: bool) -> CmdResult {
    let l = open_read(dir)?;
    // The export ends at the latest stored checkpoint (a local read never appends).
    let snap = l.latest();
    let size = snap.checkpoint.size;
    let notes = l.checkpoints().map_err(fail)?;
    let cut = notes
        .iter()
        .position(|n| *n == snap.checkpoint.note)
        .ok_or_else(|| fail("latest checkpoint is not stored"))?;
    // Openings are personal data: the file is readable by its owner only (mode 0600).
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let f = opts
        .open(out)
        .map_err(|e| fail(format!("{}: {e}", out.display())))?;
    let header = Header {
        origin: l.origin().to_string(),
        log_key: l.public_key().to_bytes(),
        openings,
        checkpoints: notes[..=cut].to_vec(),
        leaves: size,
    };
    let mut w = Writer::new(BufWriter::new(f), &header).map_err(fail)?;
    for i in 0..size {
        let e = l
            .leaf(i)
            .map_err(fail)?
            .ok_or_else(|| fail(format!("leaf {i} is missing")))?;
        let o = if openings {
            l.opening(i).map_err(fail)?
        } else {
            None
        };
        w.leaf(&e.to_bytes(), o.as_ref()).map_err(fail)?;
    }
    let f = w.finish().map_err(fail)?;
    f.into_inner()
        .map_err(|e| fail(e.to_string()))?
        .sync_all()
        .map_err(fail)?;
    eprintln!(
        "exported {size} leaves and {} checkpoints{} to {}",
        cut + 1,
        if openings { " with openings" } else { "" },
        out.display()
    );
    Ok(())
}
