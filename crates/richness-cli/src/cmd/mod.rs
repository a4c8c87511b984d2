//! One module per subcommand.

mod demo;
pub mod ntk;
mod table;
mod train;

use crate::args::{Cli, Command};
use crate::Exit;

pub fn dispatch(cli: Cli) -> anyhow::Result<Exit> {
    let threads = cli.threads_or_default();
    let progress = !cli.quiet;
    match cli.cmd {
        Command::Table(a) => table::run(a),
        Command::Train(a) => train::run(a, threads, progress),
        Command::Demo(a) => demo::run(a, threads, progress),
        Command::Ntk(a) => ntk::run(a, threads, progress),
    }
}
