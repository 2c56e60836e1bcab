#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared_lib::service::run_skeleton(recommender::SERVICE, recommender::DEFAULT_PORT).await
}
