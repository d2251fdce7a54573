//! `redpepper-ctl`: parse the command line, run it, map the outcome to an exit status.

use clap::{CommandFactory, Parser};
use redpepper_config::service::generate;
use redpepper_ctl::cli::Cli;
use redpepper_ctl::EXIT_ERROR;

fn main() {
    if let Some(done) = generate::generate_if_asked(Cli::command) {
        if let Err(e) = done {
            eprintln!("error: writing man pages or completions: {e}");
            std::process::exit(EXIT_ERROR);
        }
        return;
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(EXIT_ERROR);
        }
    };
    let code = match runtime.block_on(redpepper_ctl::main(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_ERROR
        }
    };
    std::process::exit(code);
}
