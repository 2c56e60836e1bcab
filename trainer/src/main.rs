use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = trainer::cli::Cli::parse();
    trainer::cli::run(cli).await
}
