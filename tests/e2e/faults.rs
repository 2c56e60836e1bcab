//! Faults survived, end to end: the real `fraud`, `recommender`, `registry` and `trainer`
//! binaries as child processes, Garage as the store (issue #5, part 2).
//!
//! Where the store must go away, a test starts a Garage of its own (`PrivateGarage`, a few
//! seconds) and really SIGKILLs and restarts it: the suite's shared Garage on
//! `E2E_S3_ENDPOINT` serves the other tests in parallel. The other tests use the shared one
//! under a fresh prefix each.
//!
//! The concurrent-publishers fault (20 registrations, racing alias moves, one CAS winner) is
//! `registry_service_on_garage_allocates_distinct_versions_and_one_cas_winner` in `garage.rs`.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.
#![allow(clippy::print_stdout)] // The observed numbers go to the test's output.

use std::os::unix::process::ExitStatusExt as _;
use std::time::{Duration, Instant};

use e2e::garage::PrivateGarage;
use e2e::process::{Proc, Service};
use e2e::proxy::{Cut, HoldingProxy};
use e2e::{RegistryApi, fraud_model, fraud_registration};
use shared_lib::testing::eventually;

const CLASSIFY: &str = "/classify?f1=500&f2=1&f3=1";

/// The store variables plus `extra`.
fn with(env: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = env.to_vec();
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

/// Starts a private Garage (blocking the test thread, not the runtime's others).
fn private_garage() -> (PrivateGarage, Duration) {
    let started = Instant::now();
    let garage = tokio::task::block_in_place(PrivateGarage::start);
    (garage, started.elapsed())
}

/// Log records of `proc` whose message is `message` and whose `error` contains `needle`.
fn logged_errors(proc: &Proc, message: &str, needle: &str) -> usize {
    proc.logs()
        .iter()
        .filter(|r| r["message"] == message)
        .filter(|r| r["error"].as_str().is_some_and(|e| e.contains(needle)))
        .count()
}

/// Registers two fraud versions and points production at the first.
async fn production_v1_and_unpromoted_v2(registry: &RegistryApi) -> (u64, u64) {
    let v1 = registry
        .register("fraud", &fraud_registration(&fraud_model(100.0)))
        .await;
    registry.promote("fraud", v1).await;
    let v2 = registry
        .register("fraud", &fraud_registration(&fraud_model(1000.0)))
        .await;
    (v1, v2)
}

const REFRESH_FAILED: &str = "Model refresh failed; still serving the loaded version, if any.";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Garage and the built binaries: run scripts/test.sh"]
async fn store_outage_while_serving_answers_from_memory_and_the_next_move_is_picked_up() {
    // Arrange: v1 serving, v2 published but not promoted, the store a Garage of our own.
    let (garage, start_time) = private_garage();
    let store = garage.service_env("outage");
    let registry = RegistryApi::start(&store).await;
    let (v1, v2) = production_v1_and_unpromoted_v2(&registry).await;
    let fraud =
        Service::start_ready("fraud", &with(&store, &[("MODEL_POLL_SECONDS", "0.2")])).await;
    assert_eq!(fraud.served_version(CLASSIFY).await, v1.to_string());
    let failed = || fraud.metric("model_reloads_total", &[("result", "failed")]);
    let failed_before = failed().await;

    // Act: the store dies (SIGKILL); keep asking while the service keeps trying to reload.
    garage.kill();
    let outage = Instant::now();
    let (mut answered, mut wrong, mut not_ready) = (0u32, 0u32, 0u32);
    while failed().await < failed_before + 3.0 {
        assert!(
            outage.elapsed() < Duration::from_secs(30),
            "reload failures were not counted during the outage:\n{}",
            fraud.proc.tail(20)
        );
        for _ in 0..25 {
            let res = fraud.get(CLASSIFY).await;
            let version = res
                .headers()
                .get("x-model-version")
                .map(|v| v.to_str().unwrap().to_owned());
            if res.status() == 200 && version == Some(v1.to_string()) {
                answered += 1;
            } else {
                wrong += 1;
            }
        }
        if fraud.status("/readyz").await != 200 {
            not_ready += 1;
        }
    }
    let failed_during = failed().await - failed_before;
    let logged = logged_errors(&fraud.proc, REFRESH_FAILED, "object store");
    let outage_time = outage.elapsed();

    // Act: the store returns; production moves to v2.
    let restarted = Instant::now();
    tokio::task::block_in_place(|| garage.restart());
    let restart_time = restarted.elapsed();
    registry.promote("fraud", v2).await;
    let moved = Instant::now();
    eventually(
        "the service follows production to v2",
        Duration::from_secs(30),
        || async { fraud.served_version(CLASSIFY).await == v2.to_string() },
    )
    .await;

    // Assert
    assert_eq!(wrong, 0, "requests not answered by v1 during the outage");
    assert_eq!(not_ready, 0, "/readyz went unready during the outage");
    assert!(
        answered >= 100,
        "only {answered} requests during the outage"
    );
    assert!(failed_during >= 3.0);
    assert!(
        logged >= 1,
        "no log of the failed refresh:\n{}",
        fraud.proc.tail(20)
    );
    println!(
        "store outage: private Garage start {start_time:.1?}, restart {restart_time:.1?}; \
         {outage_time:.1?} down: {answered} requests answered by v{v1}, 0 failed, /readyz 200 \
         throughout; model_reloads_total{{result=\"failed\"}} +{failed_during} ({logged} log \
         records); after the restart, production -> v{v2} served in {:.1?}",
        moved.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Garage and the built binaries: run scripts/test.sh"]
async fn a_restart_during_a_store_outage_serves_the_last_good_version_from_the_cache() {
    // Arrange: the service follows production from v1 to v2 with a cache directory.
    let (garage, _) = private_garage();
    let store = garage.service_env("cache");
    let cache = tempfile::tempdir().unwrap();
    let registry = RegistryApi::start(&store).await;
    let (_, v2) = production_v1_and_unpromoted_v2(&registry).await;
    let cached_env = with(
        &store,
        &[
            ("MODEL_POLL_SECONDS", "0.2"),
            ("MODEL_CACHE_DIR", cache.path().to_str().unwrap()),
        ],
    );
    let mut first = Service::start_ready("fraud", &cached_env).await;
    registry.promote("fraud", v2).await;
    eventually(
        "the first run loads v2",
        Duration::from_secs(30),
        || async { first.served_version(CLASSIFY).await == v2.to_string() },
    )
    .await;

    // Act: the store dies, the service is restarted (a rollout), and so is one without a cache.
    garage.kill();
    first.proc.signal("TERM");
    let status = first.proc.wait(Duration::from_secs(30)).await;
    assert!(status.success(), "SIGTERM exit: {status}");
    let started = Instant::now();
    let mut restarted = Service::start("fraud", &cached_env).await;
    shared_lib::testing::wait_until_ready(&restarted.url).await;
    let ready_after = started.elapsed();
    let mut uncached =
        Service::start("fraud", &with(&store, &[("MODEL_POLL_SECONDS", "0.2")])).await;
    uncached
        .proc
        .wait_for_log("a failed load", Duration::from_secs(30), |r| {
            r["message"] == REFRESH_FAILED
        })
        .await;

    // Assert: the restarted service serves v2 from its cache; the one without stays unready.
    assert_eq!(restarted.served_version(CLASSIFY).await, v2.to_string());
    assert_eq!(restarted.status("/readyz").await, 200);
    let cached_loads = restarted
        .metric("model_reloads_total", &[("result", "cached")])
        .await;
    assert!(
        cached_loads >= 1.0,
        "model_reloads_total{{result=\"cached\"}} = {cached_loads}"
    );
    restarted
        .proc
        .wait_for_log("the cache fallback", Duration::from_secs(5), |r| {
            r["message"] == "Store unreachable; serving the last-good cached version."
        })
        .await;
    assert_eq!(uncached.status("/readyz").await, 503);
    assert_eq!(uncached.status(CLASSIFY).await, 503);

    // And when the store returns, the uncached one loads production too.
    tokio::task::block_in_place(|| garage.restart());
    shared_lib::testing::wait_until_ready(&uncached.url).await;
    assert_eq!(uncached.served_version(CLASSIFY).await, v2.to_string());
    println!(
        "restart during outage: restarted service ready in {ready_after:.1?} serving cached \
         v{v2} (model_reloads_total{{result=\"cached\"}} = {cached_loads}); without a cache: \
         /readyz 503 until the store returned, then v{v2}"
    );
}

/// The store variables of a fresh prefix on the shared Garage.
fn shared_store(prefix: &str) -> (shared_lib::store::S3Settings, Vec<(String, String)>) {
    let settings = e2e::garage_settings(prefix);
    let env = e2e::store_env(&settings);
    (settings, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Garage and the built binaries: run scripts/test.sh"]
async fn a_corrupt_or_truncated_new_version_is_refused_and_the_old_one_keeps_serving() {
    use shared_lib::store::{ObjectKey, ObjectStore, PutMode, StoreLocation};

    // Arrange: v1 serving.
    let (settings, store) = shared_store("faults-corrupt");
    let registry = RegistryApi::start(&store).await;
    let v1 = registry
        .register("fraud", &fraud_registration(&fraud_model(100.0)))
        .await;
    registry.promote("fraud", v1).await;
    let fraud =
        Service::start_ready("fraud", &with(&store, &[("MODEL_POLL_SECONDS", "0.2")])).await;
    assert_eq!(fraud.served_version(CLASSIFY).await, v1.to_string());
    // v2: a well-formed envelope whose payload is no forest (the registry cannot tell).
    let v2 = registry
        .register("fraud", &fraud_registration(&vec![0.5_f64; 4]))
        .await;
    // v3: a good forest, then its artifact object truncated in the store.
    let v3 = registry
        .register("fraud", &fraud_registration(&fraud_model(300.0)))
        .await;
    let manifest = registry
        .service
        .get_json(&format!("/v1/models/fraud/versions/{v3}"))
        .await["manifest"]
        .clone();
    let raw = ObjectStore::open(&StoreLocation::S3(settings))
        .await
        .unwrap();
    let key = ObjectKey::parse(manifest["artifact"]["key"].as_str().unwrap()).unwrap();
    let whole = raw.get(&key).await.unwrap();
    raw.put(&key, whole.slice(..whole.len() / 2), PutMode::Overwrite)
        .await
        .unwrap();

    let mut observed = Vec::new();
    for (version, reason) in [(v2, "corrupt artifact"), (v3, "artifact size mismatch")] {
        let failed = || fraud.metric("model_reloads_total", &[("result", "failed")]);
        let before = failed().await;
        // Act: production moves to the bad version.
        registry.promote("fraud", version).await;
        eventually(
            &format!("a failed reload of v{version} is counted"),
            Duration::from_secs(30),
            || async { failed().await >= before + 2.0 },
        )
        .await;

        // Assert: v1 still answers, ready, and the metric, the log and /v1/models say why.
        for _ in 0..20 {
            assert_eq!(fraud.served_version(CLASSIFY).await, v1.to_string());
        }
        assert_eq!(fraud.status("/readyz").await, 200);
        assert!(
            logged_errors(&fraud.proc, REFRESH_FAILED, reason) >= 1,
            "no log saying {reason:?}:\n{}",
            fraud.proc.tail(10)
        );
        let models = fraud.get_json("/v1/models").await;
        let last_error = models["slots"][0]["last_error"]
            .as_str()
            .unwrap_or_default();
        assert!(last_error.contains(reason), "{last_error}");
        observed.push(format!(
            "v{version}: failed reloads {before} -> {}, \"{last_error}\"",
            failed().await
        ));
    }

    // And a good version after them is picked up: the loop is alive.
    let v4 = registry
        .register("fraud", &fraud_registration(&fraud_model(400.0)))
        .await;
    registry.promote("fraud", v4).await;
    eventually("v4 serves", Duration::from_secs(30), || async {
        fraud.served_version(CLASSIFY).await == v4.to_string()
    })
    .await;
    println!(
        "corrupt versions refused, v{v1} kept serving: {}; then v{v4} loaded",
        observed.join("; ")
    );
}

/// The store of `settings` reached through a [`HoldingProxy`], which can stop the download of a
/// version's artifact half-way: the store "dying" mid-response, then back.
struct ProxiedStore {
    proxy: HoldingProxy,
    settings: shared_lib::store::S3Settings,
}

impl ProxiedStore {
    async fn start(settings: &shared_lib::store::S3Settings) -> Self {
        let garage = settings.endpoint.clone().unwrap();
        Self {
            proxy: HoldingProxy::start(garage.trim_start_matches("http://")).await,
            settings: settings.clone(),
        }
    }

    /// The store variables of a service that reads the store through the proxy.
    fn env(&self) -> Vec<(String, String)> {
        e2e::store_env(&shared_lib::store::S3Settings {
            endpoint: Some(self.proxy.url.clone()),
            ..self.settings.clone()
        })
    }

    /// Arms the proxy: the next download of `version`'s artifact stops half-way.
    async fn cut_next_download(&self, registry: &RegistryApi, version: u64) {
        let manifest = registry
            .service
            .get_json(&format!("/v1/models/fraud/versions/{version}"))
            .await["manifest"]
            .clone();
        let key = manifest["artifact"]["key"].as_str().unwrap();
        let prefix = self.settings.prefix.as_ref().unwrap();
        self.proxy.hold(
            &format!("GET /{}/{prefix}/{key}", self.settings.bucket),
            Cut::MidResponse(0.5),
        );
    }

    fn cut(&self) -> bool {
        self.proxy.is_held()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Garage and the built binaries: run scripts/test.sh"]
async fn a_store_that_fails_mid_download_leaves_the_old_version_serving_and_the_next_poll_loads() {
    // Arrange: v1 serving, its store reached through a proxy; v2 published, not promoted.
    let (settings, store) = shared_store("faults-mid-download");
    let registry = RegistryApi::start(&store).await;
    let (v1, v2) = production_v1_and_unpromoted_v2(&registry).await;
    let proxied = ProxiedStore::start(&settings).await;
    let fraud = Service::start_ready(
        "fraud",
        &with(&proxied.env(), &[("MODEL_POLL_SECONDS", "0.2")]),
    )
    .await;
    assert_eq!(fraud.served_version(CLASSIFY).await, v1.to_string());
    let failed = || fraud.metric("model_reloads_total", &[("result", "failed")]);
    let failed_before = failed().await;

    // Act: the next artifact download stops half-way (the store "dies" mid-response, then is
    // back); production moves to v2. Ask all the while.
    proxied.cut_next_download(&registry, v2).await;
    registry.promote("fraud", v2).await;
    let moved = Instant::now();
    let (mut by_v1, mut by_v2, mut other) = (0u32, 0u32, 0u32);
    while fraud.served_version(CLASSIFY).await != v2.to_string() {
        assert!(
            moved.elapsed() < Duration::from_secs(30),
            "v2 never served (download cut: {}):\n{}",
            proxied.cut(),
            fraud.proc.tail(20)
        );
        for _ in 0..10 {
            let res = fraud.get(CLASSIFY).await;
            match res
                .headers()
                .get("x-model-version")
                .map(|v| v.to_str().unwrap().to_owned())
            {
                Some(v) if res.status() == 200 && v == v1.to_string() => by_v1 += 1,
                Some(v) if res.status() == 200 && v == v2.to_string() => by_v2 += 1,
                _ => other += 1,
            }
        }
    }

    // Assert: the cut download was a failed, logged load while v1 answered everything; the
    // next poll loaded v2 whole.
    assert!(proxied.cut(), "the artifact download was never cut");
    assert_eq!(other, 0, "requests not answered by v1 or v2");
    assert!(by_v1 >= 1, "no request answered while v2 was loading");
    let failed_during = failed().await - failed_before;
    assert!(
        failed_during >= 1.0,
        "the cut load was not counted as failed"
    );
    let logged = logged_errors(&fraud.proc, REFRESH_FAILED, "object store read of");
    assert!(
        logged >= 1,
        "no log of the failed read:\n{}",
        fraud.proc.tail(20)
    );
    println!(
        "download cut half-way: model_reloads_total{{result=\"failed\"}} +{failed_during} \
         ({logged} log records), {by_v1} requests answered by v{v1} and {by_v2} by v{v2}, none \
         failed; v{v2} served {:.1?} after the move",
        moved.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Garage and the built binaries: run scripts/test.sh"]
async fn a_store_that_fails_mid_download_at_start_serves_the_last_good_version_from_the_cache() {
    // Arrange: a first run caches v1; the next start reads the store through a proxy that will
    // cut v1's artifact half-way.
    let (settings, store) = shared_store("faults-mid-download-cached");
    let registry = RegistryApi::start(&store).await;
    let (v1, _) = production_v1_and_unpromoted_v2(&registry).await;
    let cache = tempfile::tempdir().unwrap();
    let cached = [
        ("MODEL_POLL_SECONDS", "0.2"),
        ("MODEL_CACHE_DIR", cache.path().to_str().unwrap()),
    ];
    let mut first = Service::start_ready("fraud", &with(&store, &cached)).await;
    first.proc.signal("TERM");
    assert!(first.proc.wait(Duration::from_secs(30)).await.success());
    let proxied = ProxiedStore::start(&settings).await;
    proxied.cut_next_download(&registry, v1).await;

    // Act: the service starts again; its first download of v1 stops half-way.
    let restarted = Service::start_ready("fraud", &with(&proxied.env(), &cached)).await;

    // Assert: ready on v1 from the cache, not from a second download.
    assert!(proxied.cut(), "the artifact download was never cut");
    assert_eq!(restarted.served_version(CLASSIFY).await, v1.to_string());
    let cached_loads = restarted
        .metric("model_reloads_total", &[("result", "cached")])
        .await;
    let store_loads = restarted
        .metric("model_reloads_total", &[("result", "loaded")])
        .await;
    assert_eq!((cached_loads, store_loads), (1.0, 0.0));
    assert!(
        logged_errors(&restarted.proc, REFRESH_FAILED, "object store read of") >= 1,
        "no log of the failed read:\n{}",
        restarted.proc.tail(20)
    );
    println!(
        "download cut half-way at start: ready on cached v{v1} \
         (model_reloads_total{{result=\"cached\"}} = {cached_loads}, loaded = {store_loads})"
    );
}

/// Runs the trainer to completion; returns its result (stdout JSON).
async fn train(args: &[&str], env: &[(String, String)]) -> serde_json::Value {
    let mut trainer = Proc::spawn("trainer", args, env);
    let status = trainer.wait(Duration::from_secs(120)).await;
    assert!(
        status.success(),
        "trainer {args:?}: {status}\n{}",
        trainer.tail(20)
    );
    let out = trainer.stdout().join("\n");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("trainer result {out:?}: {e}"))
}

/// SIGKILLs the trainer once `proxy` has held its request; checks it died of the signal.
async fn kill_when_held(mut trainer: Proc, proxy: &HoldingProxy) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !proxy.is_held() {
        assert!(
            trainer.running(),
            "the trainer finished without its request being held:\n{}",
            trainer.tail(20)
        );
        assert!(Instant::now() < deadline, "no request held within 120 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    trainer.signal("KILL");
    let status = trainer.wait(Duration::from_secs(10)).await;
    assert_eq!(status.signal(), Some(9), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Garage and the built binaries: run scripts/test.sh"]
async fn a_trainer_killed_mid_publish_leaves_no_partial_version_and_the_next_run_publishes() {
    use shared_lib::model_id::ModelName;
    use shared_lib::registry::Registry;
    use shared_lib::store::{ObjectKey, ObjectStore, StoreLocation};

    // Arrange: the registry on Garage, a proxy in front of it and one in front of Garage,
    // training data, and a first clean run (v1, production).
    let (settings, store) = shared_store("faults-trainer");
    let registry = RegistryApi::start(&store).await;
    let to_registry = HoldingProxy::start(registry.url().trim_start_matches("http://")).await;
    let garage_endpoint = settings.endpoint.clone().unwrap();
    let to_garage = HoldingProxy::start(garage_endpoint.trim_start_matches("http://")).await;
    let data_dir = tempfile::tempdir().unwrap();
    let data = data_dir.path().join("fraud.csv");
    let data = data.to_str().unwrap();
    train(&["generate", "fraud", "--rows", "3000", "--out", data], &[]).await;
    let train_args = ["train", "fraud", "--data", data, "--trees", "20"];
    let via_registry = vec![
        ("REGISTRY_URL".to_owned(), to_registry.url.clone()),
        ("REGISTRY_TOKEN".to_owned(), e2e::REGISTRY_TOKEN.to_owned()),
    ];
    let started = Instant::now();
    let first = train(&train_args, &via_registry).await;
    let train_time = started.elapsed();
    assert_eq!(first["publication"]["version"], 1, "{first}");
    assert_eq!(registry.alias("fraud", "production").await, Some(1));

    // Act 1: killed half-way through uploading the model to the registry.
    to_registry.hold("PUT /v1/models/fraud/artifacts/", Cut::MidBody(0.5));
    kill_when_held(
        Proc::spawn("trainer", &train_args, &via_registry),
        &to_registry,
    )
    .await;

    // Assert 1: nothing new, in the registry's listing or in the store.
    let truth = Registry::new(
        ObjectStore::open(&StoreLocation::S3(settings.clone()))
            .await
            .unwrap(),
    );
    let fraud = ModelName::parse("fraud").unwrap();
    let listed = |r: Vec<shared_lib::registry::records::VersionState>| {
        r.iter()
            .map(|v| u64::from(v.version.get()))
            .collect::<Vec<_>>()
    };
    assert_eq!(registry.complete_versions("fraud").await, [1]);
    assert_eq!(listed(truth.list_versions(&fraud).await.unwrap()), [1]);

    // Act 2: killed while publishing straight into the store, after its artifact and version
    // claim are written and before its manifest is. Garage ignores conditional writes, so the
    // trainer must be told it is the only writer (the registry is idle meanwhile).
    let mut direct = store.clone();
    direct.retain(|(k, _)| k != "S3_ENDPOINT_URL");
    direct.push(("S3_ENDPOINT_URL".into(), to_garage.url.clone()));
    direct.push(("TRAINER_SOLE_WRITER".into(), "true".into()));
    let prefix = settings.prefix.as_ref().unwrap();
    to_garage.hold(
        &format!(
            "PUT /{}/{prefix}/models/fraud/versions/0000000002/manifest.json",
            settings.bucket
        ),
        Cut::BeforeRequest,
    );
    kill_when_held(Proc::spawn("trainer", &train_args, &direct), &to_garage).await;

    // Assert 2: the half-published version exists in the store (claim, artifact) and is not
    // listed anywhere; every listed version is whole.
    let claim = ObjectKey::parse("models/fraud/versions/0000000002/claim.json").unwrap();
    assert!(
        truth.store().get(&claim).await.is_ok(),
        "the killed run claimed v2"
    );
    assert_eq!(listed(truth.list_versions(&fraud).await.unwrap()), [1]);
    let fresh = RegistryApi::start(&store).await;
    assert_eq!(fresh.complete_versions("fraud").await, [1]);
    assert_eq!(fresh.alias("fraud", "production").await, Some(1));

    // Act 3: the next run, through the registry again.
    let next = train(&train_args, &via_registry).await;

    // Assert 3: it publishes cleanly, after the abandoned claim.
    assert_eq!(next["publication"]["version"], 3, "{next}");
    assert_eq!(registry.complete_versions("fraud").await, [1, 3]);
    assert_eq!(listed(truth.list_versions(&fraud).await.unwrap()), [1, 3]);
    println!(
        "trainer killed mid-publish: clean run {train_time:.1?}; SIGKILL half-way through the \
         upload -> versions [1]; SIGKILL before the manifest on the store (claim 2 written) -> \
         versions [1]; next run -> v3, versions [1, 3], each whole (sha256 checked)"
    );
}

/// The value of `Name: N` (or `Name: a N, b M`) lines in wrk's report; 0 when absent (wrk prints
/// them only when non-zero).
fn wrk_count(report: &str, line: &str) -> u64 {
    report
        .lines()
        .filter(|l| l.trim_start().starts_with(line))
        .flat_map(|l| {
            l.split([',', ':'])
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Garage, wrk and the built binaries: run scripts/test.sh"]
async fn ten_hot_reloads_under_wrk_load_fail_no_request() {
    // Arrange: v1 serving, ten more versions published.
    let (_, store) = shared_store("faults-wrk");
    let registry = RegistryApi::start(&store).await;
    let mut versions = Vec::new();
    for i in 0..11_u32 {
        let model = fraud_model(100.0 + f64::from(i));
        versions.push(
            registry
                .register("fraud", &fraud_registration(&model))
                .await,
        );
    }
    registry.promote("fraud", versions[0]).await;
    let fraud =
        Service::start_ready("fraud", &with(&store, &[("MODEL_POLL_SECONDS", "0.1")])).await;
    let loaded = || fraud.metric("model_reloads_total", &[("result", "loaded")]);
    let loaded_before = loaded().await;

    // Act: wrk for 8 s; meanwhile production moves ten times, each waited for.
    let url = format!("{}{CLASSIFY}", fraud.url);
    let mut wrk = Proc::spawn_program(
        std::path::Path::new("wrk"),
        &["-t2", "-c8", "-d8s", "--timeout", "5s", &url],
        &[],
    );
    let started = Instant::now();
    for &version in &versions[1..] {
        registry.promote("fraud", version).await;
        eventually(
            &format!("v{version} serves"),
            Duration::from_secs(10),
            || async { fraud.served_version(CLASSIFY).await == version.to_string() },
        )
        .await;
    }
    let reloads_took = started.elapsed();
    assert!(
        wrk.running(),
        "the ten reloads outlasted the load ({reloads_took:.1?})"
    );
    let status = wrk.wait(Duration::from_secs(30)).await;
    let report = wrk.output().join("\n");

    // Assert: wrk saw no error of any kind, and the last version serves.
    assert!(status.success(), "wrk: {status}\n{report}");
    let requests = report
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no request count in:\n{report}"));
    let non_2xx = wrk_count(&report, "Non-2xx or 3xx responses");
    let socket_errors = wrk_count(&report, "Socket errors");
    assert_eq!(non_2xx, 0, "{report}");
    assert_eq!(socket_errors, 0, "{report}");
    assert!(
        requests >= 1_000,
        "wrk made only {requests} requests:\n{report}"
    );
    let last = versions[10];
    assert_eq!(fraud.served_version(CLASSIFY).await, last.to_string());
    let reloads = loaded().await - loaded_before;
    assert!(reloads >= 10.0, "{reloads} reloads");
    let server_5xx = fraud
        .metric(
            "http_requests_total",
            &[("route", "/classify"), ("outcome", "server_error")],
        )
        .await;
    let metrics_text = fraud.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        server_5xx,
        0.0,
        "{}",
        metrics_text
            .lines()
            .filter(|l| l.contains("server_error"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!(
        "hot reload under wrk: {requests} requests in 8 s, Non-2xx 0, socket errors 0; 10 \
         alias moves v{}..v{last} all served within {reloads_took:.1?} \
         (model_reloads_total{{result=\"loaded\"}} +{reloads})",
        versions[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Garage and the built binaries: run scripts/test.sh"]
async fn sigterm_lets_in_flight_requests_finish_and_exits_zero() {
    // Arrange: a generated ALS model, published by the trainer; the recommender serving it.
    let (_, store) = shared_store("faults-sigterm");
    let registry = RegistryApi::start(&store).await;
    let data_dir = tempfile::tempdir().unwrap();
    let ratings = data_dir.path().join("ratings.tsv");
    let ratings = ratings.to_str().unwrap();
    train(
        &[
            "generate",
            "ratings",
            "--users",
            "2000",
            "--items",
            "20000",
            "--density",
            "0.002",
            "--out",
            ratings,
        ],
        &[],
    )
    .await;
    let env = vec![
        ("REGISTRY_URL".to_owned(), registry.url().to_owned()),
        ("REGISTRY_TOKEN".to_owned(), e2e::REGISTRY_TOKEN.to_owned()),
    ];
    let trained = train(
        &[
            "train",
            "recommender",
            "--ratings",
            ratings,
            "--rank",
            "32",
            "--iterations",
            "1",
            // One iteration only builds a large catalogue fast; it need not beat the mean
            // predictor, the gate's default floor, so the floor is lifted for this test.
            "--max-rmse",
            "100",
        ],
        &env,
    )
    .await;
    assert_eq!(trained["publication"]["promoted"], true, "{trained}");
    let users: Vec<String> = std::fs::read_to_string(ratings)
        .unwrap()
        .lines()
        .filter_map(|l| l.split('\t').next().map(str::to_owned))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .take(1000)
        .collect();
    let mut recommender = Service::start_ready("recommender", &store).await;
    let post = |client: reqwest::Client, url: String, body: serde_json::Value| async move {
        let res = client
            .post(format!("{url}/v1/recommendations"))
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let answer: serde_json::Value = res.json().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((status, answer, Instant::now()))
    };
    // A batch size that takes about a second alone on this machine (100 to 1000 users).
    let probe = Instant::now();
    let (status, _, _) = post(
        recommender.client.clone(),
        recommender.url.clone(),
        serde_json::json!({"users": users[..100], "n": 10}),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let per_100 = probe.elapsed();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let batch = ((100.0 / per_100.as_secs_f64()) as usize).clamp(100, users.len());
    let users = &users[..batch];
    let body = serde_json::json!({"users": users, "n": 10});
    let timed = Instant::now();
    let (status, _, _) = post(
        recommender.client.clone(),
        recommender.url.clone(),
        body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let one_batch = timed.elapsed();

    // Act: four such batches in flight (they share two cores: each takes longer than one alone),
    // then SIGTERM.
    let in_flight: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(post(
                recommender.client.clone(),
                recommender.url.clone(),
                body.clone(),
            ))
        })
        .collect();
    // In flight means received by the service: its gauge counts the four and this scrape.
    eventually(
        "the four batches in flight",
        Duration::from_secs(10),
        || async {
            let Ok(res) = recommender
                .client
                .get(format!("{}/metrics", recommender.url))
                .send()
                .await
            else {
                return false;
            };
            let text = res.text().await.unwrap_or_default();
            shared_lib::testing::metric_sum(&text, "http_requests_in_flight", &[]) >= 5.0
        },
    )
    .await;
    recommender.proc.signal("TERM");
    let sigterm = Instant::now();
    let exit = recommender.proc.wait(Duration::from_secs(60)).await;

    // Assert: every in-flight batch got a whole 200 answer, after the SIGTERM; exit code 0.
    let mut finished_after = Vec::new();
    for request in in_flight {
        let (status, answer, done) = request.await.unwrap().unwrap();
        assert_eq!(status, 200, "{answer}");
        let results = answer["results"].as_array().unwrap();
        assert_eq!(results.len(), users.len());
        assert!(
            results
                .iter()
                .all(|r| r["items"].as_array().is_some_and(|i| i.len() == 10))
        );
        assert!(
            done > sigterm,
            "a batch finished before the SIGTERM: not in flight"
        );
        finished_after.push(done - sigterm);
    }
    assert!(exit.success(), "exit after SIGTERM: {exit}");
    assert!(
        recommender
            .client
            .get(format!("{}/healthz", recommender.url))
            .send()
            .await
            .is_err(),
        "still accepting connections after it exited"
    );
    println!(
        "SIGTERM under load: one batch of {} users takes {one_batch:.1?}; 4 in flight at \
         SIGTERM all answered 200 in full, finishing {finished_after:.1?} after it; exit code 0",
        users.len()
    );
}
