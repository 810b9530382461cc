//! The docker provider against the local Docker daemon, plus cleanup checks.
//!
//! These tests need a daemon; without one they fail with the provider's
//! error, as every other server test does.

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
