//! `squawk-bot bench`: measurements that print figures (see docs/benchmarks.md).

use clap::Args as ClapArgs;

/// Benchmark options.
#[derive(Debug, ClapArgs)]
pub struct BenchArgs {
    /// Where to write the Markdown report.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// Runs the benchmarks.
pub async fn run(_server: &str, _args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("bench: not implemented yet")
}
