//! The docker provider against the local Docker daemon, plus cleanup and
//! image-building checks.
//!
//! These tests need a daemon; without one they fail with the provider's
//! error. So they build only with this package's feature
//! `docker-provider-tests`, which `cargo xtask test` turns on when its
//! servers are containers and otherwise leaves off, saying so
//! (`left out: test-support/provider-tests/tests/docker.rs ...`).

mod common;

provider_tests!(ProviderKind::Docker);

#[tokio::test]
async fn auto_picks_docker_when_a_daemon_answers() {
    let provider = Provider::new(ProviderKind::Auto).await.unwrap();
    assert_eq!(
        provider.kind(),
        ProviderKind::Docker,
        "{}",
        provider.description()
    );
    assert!(
        provider.description().contains("auto"),
        "{}",
        provider.description()
    );
}

mod cleanup {
    use std::collections::HashMap;

    use test_support::{LABEL, OWNER_LABEL, ProviderKind};
    use testcontainers::bollard::{
        Docker, models::NetworkCreateRequest, query_parameters::ListContainersOptionsBuilder,
    };

    fn docker() -> Result<Docker, testcontainers::bollard::errors::Error> {
        Docker::connect_with_defaults()
    }

    async fn network_exists(docker: &Docker, name: &str) -> bool {
        docker
            .inspect_network(
                name,
                None::<testcontainers::bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn cleanup_stale_removes_only_dead_owners() {
        let docker = docker().unwrap();
        let create = async |name: &str, owner: &str| {
            docker
                .create_network(NetworkCreateRequest {
                    name: name.to_owned(),
                    labels: Some(HashMap::from([
                        (LABEL.to_owned(), "1".to_owned()),
                        (OWNER_LABEL.to_owned(), owner.to_owned()),
                    ])),
                    ..NetworkCreateRequest::default()
                })
                .await
                .unwrap();
        };
        let pid = std::process::id();
        let dead = format!("memorycached-test-dead-{pid}");
        let live = format!("memorycached-test-live-{pid}");
        // pid 0 is never a test process; our own pid with a wrong start time
        // is a recycled pid, so also dead.
        create(&dead, "0-1").await;
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        let start = own
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .nth(19)
            .unwrap()
            .to_owned();
        create(&live, &format!("{pid}-{start}")).await;

        let report = test_support::cleanup_stale().await.unwrap();
        assert!(report.daemon);
        // Not `report.networks >= 1`: a docker provider created meanwhile by
        // a parallel test process runs the same cleanup and may win the race.
        assert!(
            !network_exists(&docker, &dead).await,
            "the dead owner's network is still there"
        );
        assert!(
            network_exists(&docker, &live).await,
            "a live owner's network was removed"
        );
        docker.remove_network(&live).await.unwrap();
    }

    #[tokio::test]
    async fn dropping_servers_and_provider_removes_containers_and_network() {
        let docker = docker().unwrap();
        let provider = test_support::Provider::new(ProviderKind::Docker)
            .await
            .unwrap();
        let network = provider
            .description()
            .rsplit_once("network ")
            .unwrap()
            .1
            .to_owned();
        let (mc, redis) = tokio::join!(provider.memcached(), provider.redis());
        let (mc, redis) = (mc.unwrap(), redis.unwrap());
        let mine = async |network: &str| {
            let filters = HashMap::from([("network", vec![network.to_owned()])]);
            docker
                .list_containers(Some(
                    ListContainersOptionsBuilder::new()
                        .all(true)
                        .filters(&filters)
                        .build(),
                ))
                .await
                .unwrap()
                .len()
        };
        assert_eq!(mine(&network).await, 2);
        drop(mc);
        assert_eq!(mine(&network).await, 1);
        drop(redis);
        assert_eq!(mine(&network).await, 0);
        assert!(
            network_exists(&docker, &network).await,
            "the provider still holds its network"
        );
        drop(provider);
        assert!(
            !network_exists(&docker, &network).await,
            "the network outlived its provider"
        );
    }

    /// Dropping the provider first: the last server's drop removes the network.
    #[tokio::test]
    async fn network_goes_with_the_last_server_when_the_provider_is_dropped_first() {
        let docker = docker().unwrap();
        let provider = test_support::Provider::new(ProviderKind::Docker)
            .await
            .unwrap();
        let network = provider
            .description()
            .rsplit_once("network ")
            .unwrap()
            .1
            .to_owned();
        let redis = provider.redis().await.unwrap();
        drop(provider);
        assert!(network_exists(&docker, &network).await);
        drop(redis);
        assert!(
            !network_exists(&docker, &network).await,
            "the network outlived its last server"
        );
    }
}

mod images {
    use std::time::{Duration, Instant};

    use test_support::{BuildMethod, ImageAction, ServerKind};
    use testcontainers::{
        GenericImage, ImageExt, bollard::query_parameters::RemoveImageOptionsBuilder,
        core::IntoContainerPort, runners::AsyncRunner,
    };

    use super::common::request;

    /// Polls `version` / `PING` on `addr` until it answers or `budget` passes.
    async fn answers_within(kind: ServerKind, addr: &str, budget: Duration) -> Result<(), String> {
        let (ask, ends): (&[u8], &[&str]) = match kind {
            ServerKind::Memcached => (b"version\r\n", &["\r\n"]),
            ServerKind::Redis | ServerKind::Valkey => (b"PING\r\n", &["\r\n"]),
        };
        let deadline = Instant::now() + budget;
        let mut pause = Duration::from_millis(5);
        loop {
            let reply = request(addr, ask, ends, Duration::from_secs(2)).await;
            match reply {
                Ok(text) if text.starts_with("VERSION ") || text.starts_with("+PONG") => {
                    return Ok(());
                }
                other if Instant::now() >= deadline => {
                    return Err(format!(
                        "{addr} did not answer within {budget:?}: {other:?}"
                    ));
                }
                _ => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
            }
        }
    }

    /// Both build methods, for both servers, give an image that starts and
    /// answers. Throwaway names keep the shared images untouched.
    #[tokio::test]
    async fn both_build_methods_produce_working_images() {
        let docker = testcontainers::bollard::Docker::connect_with_defaults().unwrap();
        let mut seen = Vec::new();
        for (method, label, expected) in [
            (
                BuildMethod::BuildKit,
                "buildkit",
                ImageAction::BuiltWithBuildKit,
            ),
            (BuildMethod::Import, "import", ImageAction::Imported),
        ] {
            for kind in [ServerKind::Memcached, ServerKind::Redis] {
                let name = format!(
                    "memorycached-selftest/{}-{label}-{}",
                    kind.name(),
                    std::process::id()
                );
                let report = test_support::build_image(kind, &name, method)
                    .await
                    .unwrap();
                assert_eq!(report.action, expected);
                let (image_name, tag) = report.image.split_once(':').unwrap();
                let (port, args): (u16, &[&str]) = match kind {
                    ServerKind::Memcached => (11211, &["-m", "16"]),
                    // Redis must accept clients through the published port.
                    ServerKind::Redis | ServerKind::Valkey => {
                        (6379, &["--save", "", "--protected-mode", "no"])
                    }
                };
                let run = async {
                    let container = GenericImage::new(image_name, tag)
                        .with_exposed_port(port.tcp())
                        .with_cmd(args.iter().map(|a| (*a).to_owned()))
                        .start()
                        .await
                        .map_err(|e| format!("starting {}: {e}", report.image))?;
                    let ready = match container.get_host_port_ipv4(port).await {
                        Ok(host_port) => {
                            let addr = format!("127.0.0.1:{host_port}");
                            answers_within(kind, &addr, Duration::from_secs(10)).await
                        }
                        Err(e) => Err(format!("reading the published port: {e}")),
                    };
                    let _ = container.rm().await;
                    ready
                };
                let ready = run.await;
                // Removed whatever happened, so failed runs leave no images.
                let _ = docker
                    .remove_image(
                        &report.image,
                        Some(RemoveImageOptionsBuilder::new().force(true).build()),
                        None,
                    )
                    .await;
                ready.unwrap();
                seen.push(format!(
                    "{} via {label} in {:?}",
                    report.image, report.elapsed
                ));
            }
        }
        eprintln!("{seen:#?}");
        assert_eq!(seen.len(), 4);
    }
}
