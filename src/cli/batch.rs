//! `prove --batch` and `verify --batch`: many proofs against one shared checkpoint, for
//! training jobs that hold millions of records.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use rayon::prelude::*;
use serde_json::json;

use super::verify::{question, verdict_json, VerifyArgs};
use super::{fail, CmdResult, Failure};
use crate::core::note;
use crate::core::proof::{check_anchor, check_with_anchor_keys};
use crate::core::proof_batch::{line_id, BatchHeader, BatchProof, BatchQuery, BATCH_FORMAT};
use crate::ledger::Ledger;

/// Lines handled per parallel round. It bounds memory on huge files, and it is small on
/// purpose: each round's proofs and their JSON are freed before the next, so the next reuses
/// the same heap. With 16,384 lines a round, `prove --batch` of 40k queries on a 400k ledger
/// peaked at 250 MB and spent a twentieth of its time faulting fresh pages in (61k faults);
/// with 2,048, 164 MB and 40k faults (`verify --batch`: 149 MB and 37k faults, now 44 MB and
/// 11k), at no cost in parallelism.
const ROUND: usize = 2048;

pub fn prove(dir: &Path, queries: &Path, out: Option<&Path>, cache_bytes: u64) -> CmdResult {
    let opts = crate::ledger::Options::default()
        .cache_bytes(cache_bytes)
        .read_only();
    let l = Ledger::open_with(dir, opts).map_err(fail)?;
    let f =
        std::fs::File::open(queries).map_err(|e| fail(format!("{}: {e}", queries.display())))?;
    let mut lines = BufReader::with_capacity(1 << 20, f).lines();
    // A local read never appends: the proofs are as of the newest map leaf.
    let now = crate::ledger::clock::now_ms();
    let snap = l.latest();
    let (genesis, map_leaf) = l.anchor(&snap).map_err(fail)?;
    let sink: Box<dyn Write + Send> = match out {
        Some(p) => {
            Box::new(std::fs::File::create(p).map_err(|e| fail(format!("{}: {e}", p.display())))?)
        }
        None => Box::new(std::io::stdout()),
    };
    let mut w = BufWriter::with_capacity(1 << 20, sink);
    let header = BatchHeader {
        format: BATCH_FORMAT.into(),
        checkpoint: snap.checkpoint.note.clone(),
        genesis,
        map_leaf,
        witnessed: l.witnessed_for(&snap).map_err(fail)?,
    };
    serde_json::to_writer(&mut w, &header).map_err(fail)?;
    w.write_all(b"\n").map_err(fail)?;
    // Streamed in rounds: memory holds two rounds of queries and proofs, whatever the file.
    // Each line is parsed, proven and written out as JSON on the worker threads; the main
    // thread reads lines, and a writer thread writes one round's results in order while the
    // next round is proven (a round of proofs is tens of MB of JSON).
    let (to_writer, rounds) = std::sync::mpsc::sync_channel::<Vec<(bool, Vec<u8>)>>(1);
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        for answers in rounds {
            for (_, line) in answers {
                w.write_all(&line)?;
                w.write_all(b"\n")?;
            }
        }
        w.flush()
    });
    let store = l.store();
    // One storage handle per worker thread where the engine has them (see
    // `Store::another_reader`), the cache shared out between them; else all share `store`,
    // which answers the same (only slower), so a handle that fails to open is not an error.
    let threads = rayon::current_num_threads();
    let mut own: Vec<Box<dyn crate::store::Store>> = Vec::with_capacity(threads);
    for _ in 0..threads {
        match store.another_reader(cache_bytes / threads as u64) {
            Ok(Some(s)) => own.push(s),
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("a reader of its own per thread: {e}; the threads share one");
                own.clear();
                break;
            }
        }
    }
    let view_for_this_thread = || match rayon::current_thread_index().and_then(|i| own.get(i)) {
        Some(s) => s.view(),
        None => store.view(),
    };
    let (mut total, mut failed, mut line_no) = (0usize, 0usize, 0usize);
    loop {
        let mut round: Vec<(usize, String)> = Vec::with_capacity(ROUND);
        for line in lines.by_ref() {
            let line = line.map_err(|e| fail(format!("{}: {e}", queries.display())))?;
            line_no += 1;
            if line.trim().is_empty() {
                continue;
            }
            round.push((line_no, line));
            if round.len() == ROUND {
                break;
            }
        }
        if round.is_empty() {
            break;
        }
        total += round.len();
        let answers: Vec<(bool, Vec<u8>)> = round
            .par_iter()
            .map_init(view_for_this_thread, |view, (n, line)| {
                // Every answer line carries its query's id (its own, else its line
                // number), so that answers and verdicts can be tied back to questions.
                let q: BatchQuery = match crate::core::hash::json_object(line) {
                    Ok(q) => q,
                    Err(e) => {
                        let id = line_id(line).unwrap_or_else(|| n.to_string());
                        let error = format!("query line {n}: {e}");
                        let line = json!({ "id": id, "error": error }).to_string();
                        return (false, line.into_bytes());
                    }
                };
                let id = q.id.clone().unwrap_or_else(|| n.to_string());
                match l.prove_query_with(view, &snap, now, &q) {
                    Ok(p) => {
                        let mut bp = BatchProof::from_proof(p);
                        bp.id = Some(id);
                        // A proof line is a few KiB: one allocation, not a dozen.
                        let mut line = Vec::with_capacity(8192);
                        serde_json::to_writer(&mut line, &bp).expect("json");
                        (true, line)
                    }
                    Err(e) => (
                        false,
                        json!({ "id": id, "error": e.to_string() })
                            .to_string()
                            .into_bytes(),
                    ),
                }
            })
            .collect();
        failed += answers.iter().filter(|(ok, _)| !ok).count();
        if to_writer.send(answers).is_err() {
            // The writer stopped on an error: it is reported below.
            break;
        }
    }
    drop(to_writer);
    writer
        .join()
        .map_err(|_| fail("the writer thread panicked"))?
        .map_err(fail)?;
    eprintln!(
        "{} proofs as of the map leaf at {} ({} ms), under a checkpoint of {} leaves; \
         {failed} queries failed",
        total - failed,
        super::time::rfc3339(snap.map_leaf.time),
        snap.map_leaf.time,
        snap.checkpoint.size
    );
    if failed > 0 {
        return Err(Failure::new(1, format!("{failed} queries failed")));
    }
    Ok(())
}

pub fn verify(key: &VerifyingKey, file: &str, a: &VerifyArgs) -> CmdResult {
    let invalid = |m: String| Failure::new(2, m);
    let q = question(a).map_err(|f| invalid(f.message))?;
    let reader: Box<dyn BufRead + Send> = if file == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        Box::new(BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(file).map_err(|e| invalid(format!("{file}: {e}")))?,
        ))
    };
    let mut lines = reader.lines();
    let first = lines
        .next()
        .ok_or_else(|| invalid(format!("{file}: empty proof batch")))?
        .map_err(|e| invalid(format!("{file}: {e}")))?;
    let header: BatchHeader = serde_json::from_str(&first)
        .map_err(|e| invalid(format!("{file}: first line is not a batch header: {e}")))?;
    if header.format != BATCH_FORMAT {
        return Err(invalid(format!("unknown batch format {:?}", header.format)));
    }
    // The shared checkpoint, genesis and map leaf are checked once.
    let cp = note::open(&header.checkpoint, key)
        .map_err(|e| invalid(format!("batch checkpoint: {e}")))?;
    let anchor = check_anchor(cp, &header.genesis, &header.map_leaf)
        .map_err(|e| invalid(format!("batch header: {e}")))?;
    // So are the witnesses (`--policy`, or the log's declared policy): every line shares them.
    let policy = super::witnessed::load(a.policy.as_deref())?;
    let witnessing = super::witnessed::check(
        policy.as_ref(),
        &anchor.genesis,
        key,
        &anchor.checkpoint,
        anchor.map.time,
        header.witnessed.as_ref(),
    )
    .map_err(|e| invalid(format!("batch header: {e}")))?;
    eprintln!(
        "{}batch checkpoint of {} leaves, log {}",
        witnessing.prefix(),
        anchor.checkpoint.size,
        anchor.checkpoint.origin
    );
    // Each triple's VRF proof is checked once per batch, each key decompressed once.
    let known = crate::core::proof::Known::default();
    let stdout = std::io::stdout();
    let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
    let (mut total, mut bad, mut not_held) = (0usize, 0usize, 0usize);
    // A reader thread reads the next round of lines while this one is checked; each line is
    // parsed, checked and its verdict written as JSON on the worker threads, and this thread
    // only counts and writes them in order.
    let (to_checker, rounds) = std::sync::mpsc::sync_channel::<Vec<(usize, String)>>(1);
    let reader = std::thread::spawn(move || -> Result<(), String> {
        let mut round: Vec<(usize, String)> = Vec::with_capacity(ROUND);
        for (i, line) in lines.enumerate() {
            let line = line.map_err(|e| e.to_string())?;
            if line.trim().is_empty() {
                continue;
            }
            // Line 1 is the header.
            round.push((i + 2, line));
            if round.len() == ROUND {
                let full = std::mem::replace(&mut round, Vec::with_capacity(ROUND));
                if to_checker.send(full).is_err() {
                    return Ok(());
                }
            }
        }
        if !round.is_empty() {
            let _ = to_checker.send(round);
        }
        Ok(())
    });
    let checkpoint_root = crate::core::hash::to_hex(&anchor.checkpoint.root);
    for round in rounds {
        // (invalid, valid but not held, the verdict line)
        let verdicts: Vec<(bool, bool, String)> = round
            .par_iter()
            .map(|(n, line)| {
                let r = crate::core::hash::json_object::<BatchProof>(line)
                    .map_err(|e| format!("not a batch proof line: {e}"))
                    .and_then(|bp| {
                        let id = bp.id.clone();
                        let p = bp.into_proof(&header);
                        check_with_anchor_keys(&p, &anchor, &q, &known)
                            .map(|v| (id, p, v, witnessing.clone()))
                            .map_err(|e| e.to_string())
                    });
                let (id, v) = match r {
                    Ok((id, p, v, w)) => (id, Ok((p, v, w))),
                    Err(e) => (line_id(line), Err(e)),
                };
                let invalid = v.is_err();
                let unheld =
                    matches!(&v, Ok((_, verdict, _)) if !verdict.state.held(a.default_allow));
                // The verdict names the line it judged and the query's id.
                let mut out = serde_json::Map::new();
                out.insert("id".into(), json!(id));
                out.insert("line".into(), json!(n));
                if let serde_json::Value::Object(m) = verdict_json(a, &v) {
                    out.extend(m);
                }
                // When, as people read it, and which log and checkpoint answered.
                if let Some(at) = out.get("at").and_then(|t| t.as_u64()) {
                    out.insert("at_rfc3339".into(), json!(super::time::rfc3339(at)));
                }
                out.insert("log".into(), json!(anchor.checkpoint.origin));
                out.insert("checkpoint_size".into(), json!(anchor.checkpoint.size));
                out.insert("checkpoint_root".into(), json!(checkpoint_root));
                let text = serde_json::to_string(&out).expect("JSON");
                (invalid, unheld, text)
            })
            .collect();
        for (invalid, unheld, text) in verdicts {
            total += 1;
            bad += usize::from(invalid);
            not_held += usize::from(unheld);
            w.write_all(text.as_bytes()).map_err(fail)?;
            w.write_all(b"\n").map_err(fail)?;
        }
    }
    reader
        .join()
        .map_err(|_| fail("the reader thread panicked"))?
        .map_err(|e| invalid(format!("{file}: {e}")))?;
    w.flush().map_err(fail)?;
    eprintln!(
        "log {}, checkpoint of {} leaves with root {}, map leaf at {}",
        anchor.checkpoint.origin,
        anchor.checkpoint.size,
        crate::core::hash::to_hex(&anchor.checkpoint.root),
        super::time::both(anchor.map.time)
    );
    if bad > 0 {
        return Err(invalid(format!("{bad} of {total} proofs are INVALID")));
    }
    if not_held > 0 {
        return Err(Failure::new(
            1,
            format!("all {total} proofs valid; consent NOT held in {not_held} of them"),
        ));
    }
    eprintln!("all {total} proofs valid, consent held in every one");
    Ok(())
}
