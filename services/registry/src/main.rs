#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared_lib::service::run_skeleton(registry::SERVICE, registry::DEFAULT_PORT).await
}
