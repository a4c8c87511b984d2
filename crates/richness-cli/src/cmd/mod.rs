//! One module per subcommand.

mod check;
pub mod data;
mod demo;
pub mod ntk;
mod reproduce;
pub mod sweep;
mod table;
mod train;

use crate::args::{Cli, Command};
use crate::Exit;

pub fn dispatch(cli: Cli) -> anyhow::Result<Exit> {
    let threads = cli.threads_or_default();
    let progress = !cli.quiet;
    let explicit_threads = cli.threads;
    match cli.cmd {
        Command::Table(a) => table::run(a),
        Command::Train(a) => train::run(a, threads, progress),
        Command::Demo(a) => demo::run(a, threads, progress),
        Command::Reproduce(a) => reproduce::run(a, threads, progress),
        Command::Check(a) => check::run_check(a, threads, progress),
        Command::Coord(a) => check::run_coord(a, threads, progress),
        Command::Diagnose(a) => check::run_diagnose(a, threads, progress),
        Command::Data(a) => data::run(a),
        Command::Ntk(a) => ntk::run(a, threads, progress),
        Command::Sweep(a) => sweep::run(a, threads, explicit_threads, progress),
        Command::Transfer(a) => sweep::transfer(a, threads, progress),
    }
}
