//! Publishing straight into a store (no `REGISTRY_URL`): refused on a store that ignores
//! conditional writes unless the trainer is told it is the only writer.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use shared_lib::settings::Env;
use shared_lib::testing::TestS3;
use trainer::pipeline::Context;

async fn context(s3: &TestS3, extra: &[(&str, &str)]) -> Result<Context, trainer::Error> {
    let mut env = s3.service_env("direct", Some("models"));
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let mut env = Env::from_pairs(env);
    let ctx = Context::from_env(&mut env).await;
    env.finish().unwrap();
    ctx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trainer_refuses_to_publish_straight_into_a_store_that_ignores_conditional_writes() {
    // Arrange: a store that acts like Garage.
    let s3 = TestS3::start().await;
    s3.ignore_conditional_writes();

    // Act
    let Err(err) = context(&s3, &[]).await else {
        panic!("the trainer accepted a store that ignores conditional writes")
    };

    // Assert: a configuration error that says what to do.
    let message = err.to_string();
    assert_eq!(err.exit_code(), 2, "{message}");
    for needle in [
        "ignores conditional writes",
        "REGISTRY_URL",
        "TRAINER_SOLE_WRITER=true",
    ] {
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trainer_publishes_straight_into_such_a_store_when_told_it_is_the_only_writer() {
    let s3 = TestS3::start().await;
    s3.ignore_conditional_writes();
    let ctx = context(&s3, &[("TRAINER_SOLE_WRITER", "true")]).await;
    assert!(ctx.is_ok(), "{:?}", ctx.err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trainer_publishes_straight_into_a_store_that_honours_conditional_writes() {
    let s3 = TestS3::start().await;
    let ctx = context(&s3, &[]).await;
    assert!(ctx.is_ok(), "{:?}", ctx.err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trainer_reports_a_store_it_cannot_probe_as_a_store_error() {
    // Arrange: the store is down.
    let s3 = TestS3::start().await;
    s3.stop();

    // Act
    let Err(err) = context(&s3, &[]).await else {
        panic!("the probe of a stopped store succeeded")
    };

    // Assert: exit code 4, retryable, not 2.
    assert_eq!(err.exit_code(), 4, "{err}");
}
