use clap::Parser;

fn main() {
    let cli = match consentlog::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to standard output with 0; a usage error exits 64
            // (EX_USAGE), never 2, which `verify` uses for an invalid proof.
            let code = if e.use_stderr() {
                consentlog::cli::EX_USAGE
            } else {
                0
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if let Err(f) = consentlog::cli::run(cli) {
        eprintln!("error: {}", f.message);
        std::process::exit(f.code);
    }
}
