//! The parsers of witnessing (c2sp.org/tlog-witness, docs/FORMAT.md §19): add-checkpoint bodies
//! as a witness reads them (mode 0 arbitrary bytes, mode 1 mutated valid bodies), a 409
//! answer's size (mode 2), a witness's 200 answer as the log checks it (mode 3 arbitrary, mode
//! 4 mutated genuine answers), and a proof's `witnessed` JSON under a policy (mode 5
//! arbitrary, mode 6 mutated genuine ones).
#![no_main]

use std::sync::OnceLock;

use consentlog_fuzz::*;
use libfuzzer_sys::fuzz_target;

fn witness() -> &'static WitnessFixture {
    static W: OnceLock<WitnessFixture> = OnceLock::new();
    W.get_or_init(|| WitnessFixture::new(loaded()))
}

fuzz_target!(|data: &[u8]| {
    match mode(data, 7) {
        (0, d) => check_add_checkpoint_body(d),
        (1, d) => check_add_checkpoint_mutation(loaded(), d),
        (2, d) => check_size_body(d),
        (3, d) => match d.split_first() {
            Some((i, rest)) => check_witness_answer(loaded(), witness(), *i as usize, rest),
            None => {}
        },
        (4, d) => check_witness_answer_mutation(loaded(), witness(), d),
        (5, d) => check_witnessed_text(loaded(), witness(), &text(d)),
        (_, d) => check_witnessed_mutation(loaded(), witness(), d),
    }
});
