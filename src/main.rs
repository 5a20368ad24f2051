use clap::Parser;

fn main() {
    let cli = consentlog::cli::Cli::parse();
    if let Err(f) = consentlog::cli::run(cli) {
        eprintln!("error: {}", f.message);
        std::process::exit(f.code);
    }
}
