#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared_lib::service::run_skeleton(fraud::SERVICE, fraud::DEFAULT_PORT).await
}
