use registry::Settings;
use shared_lib::settings::Env;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The container health check (compose): probe our own /readyz, no shell needed.
    if shared_lib::healthcheck::requested() {
        std::process::exit(shared_lib::healthcheck::run(
            Env::from_process(),
            registry::settings::DEFAULT_PORT,
        ));
    }
    if std::env::args().nth(1).as_deref() == Some("hash-token") {
        return registry::auth::credentials::hash_token_command();
    }
    let settings = Settings::from_env(Env::from_process())?;
    let _telemetry = shared_lib::telemetry::init(&settings.common.telemetry)?;
    registry::build(&settings)
        .await?
        .run_until_stopped()
        .await?;
    Ok(())
}
