//! Binary entry point: parse the command line, run, exit with the command's code.

use clap::Parser;

fn main() {
    // Bad input must never show a panic backtrace: panics inside guarded reads are turned into
    // input errors, and any other panic into exit 1 with a one-line message.
    std::panic::set_hook(Box::new(|_| {}));
    let cli = match cxmetrics::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap: 0 for --help/--version, 2 for usage errors.
            std::process::exit(e.exit_code());
        }
    };
    let code = match std::panic::catch_unwind(|| cxmetrics::app::execute(cli)) {
        Ok(code) => code,
        Err(_) => {
            eprintln!("cxmetrics: internal error (panic); please report this with the job file");
            1
        }
    };
    std::process::exit(code);
}
