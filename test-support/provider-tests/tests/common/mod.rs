//! The checks every provider must pass, as a macro expanded once per provider.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// How long a request may take before a test calls it hung.
pub const HUNG: Duration = Duration::from_millis(700);

/// Sends `request` on `stream` and reads until the reply ends with one of `ends`.
pub async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    ends: &[&str],
) -> std::io::Result<String> {
    stream.write_all(request).await?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply);
        if ends.iter().any(|end| text.ends_with(end)) {
            return Ok(text.into_owned());
        }
    }
}

/// `exchange` with a time limit; `Err` on timeout too.
pub async fn exchange_within(
    stream: &mut TcpStream,
    request: &[u8],
    ends: &[&str],
    limit: Duration,
) -> std::io::Result<String> {
    match tokio::time::timeout(limit, exchange(stream, request, ends)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// One request on a fresh connection, within `limit`.
pub async fn request(
    addr: &str,
    request: &[u8],
    ends: &[&str],
    limit: Duration,
) -> std::io::Result<String> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await?;
        exchange(&mut stream, request, ends).await
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(result) => result,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

pub async fn mc_set(addr: &str, key: &str, value: &str) -> std::io::Result<String> {
    let req = format!("set {key} 0 0 {}\r\n{value}\r\n", value.len());
    request(addr, req.as_bytes(), &["\r\n"], Duration::from_secs(5)).await
}

pub async fn mc_get(addr: &str, key: &str) -> std::io::Result<String> {
    let req = format!("get {key}\r\n");
    request(addr, req.as_bytes(), &["END\r\n"], Duration::from_secs(5)).await
}

pub fn elapsed_ms(started: Instant) -> u128 {
    started.elapsed().as_millis()
}

/// Expands to one `#[tokio::test]` per check, all against `$kind`.
#[macro_export]
macro_rules! provider_tests {
    ($kind:expr) => {
        use std::time::{Duration, Instant};

        use common::*;
        use test_support::{MemcachedOptions, Provider, ProviderKind, Server, ServerKind};
        use tokio::net::TcpStream;

        async fn provider() -> Provider {
            let provider = Provider::new($kind).await.unwrap();
            assert_eq!(provider.kind(), $kind);
            provider
        }

        async fn memcached() -> (Provider, Server) {
            let provider = provider().await;
            let server = provider.memcached().await.unwrap();
            (provider, server)
        }

        #[tokio::test]
        async fn starts_memcached_and_redis_in_parallel() {
            let provider = provider().await;
            let started = Instant::now();
            let (mc, redis) = tokio::join!(provider.memcached(), provider.redis());
            let (mc, redis) = (mc.unwrap(), redis.unwrap());
            eprintln!(
                "{}: memcached {} ({:?}) and redis {} ({:?}) ready in {} ms",
                provider.description(),
                mc.addr(),
                mc.image(),
                redis.addr(),
                redis.image(),
                elapsed_ms(started)
            );
            assert_eq!(mc.kind(), ServerKind::Memcached);
            assert_eq!(redis.kind(), ServerKind::Redis);
            assert_eq!(mc.provider(), $kind);
            assert!(mc.addr().starts_with("127.0.0.1:"), "{}", mc.addr());
            let version = request(
                &mc.addr(),
                b"version\r\n",
                &["\r\n"],
                Duration::from_secs(5),
            )
            .await
            .unwrap();
            assert!(version.starts_with("VERSION 1."), "{version}");
            let pong = request(
                &redis.addr(),
                b"PING\r\n",
                &["\r\n"],
                Duration::from_secs(5),
            )
            .await
            .unwrap();
            assert_eq!(pong, "+PONG\r\n");
            let set = request(
                &redis.addr(),
                b"SET k v\r\nGET k\r\n",
                &["$1\r\nv\r\n"],
                Duration::from_secs(5),
            )
            .await
            .unwrap();
            assert_eq!(set, "+OK\r\n$1\r\nv\r\n");
        }

        #[tokio::test]
        async fn pause_makes_requests_hang_and_unpause_answers_them() {
            let (_provider, mc) = memcached().await;
            assert_eq!(mc_set(&mc.addr(), "k", "kept").await.unwrap(), "STORED\r\n");
            let mut held = TcpStream::connect(mc.addr()).await.unwrap();
            mc.pause().await.unwrap();
            let hung = exchange_within(&mut held, b"get k\r\n", &["END\r\n"], HUNG).await;
            assert_eq!(hung.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
            let fresh = request(&mc.addr(), b"version\r\n", &["\r\n"], HUNG).await;
            assert_eq!(fresh.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
            mc.unpause().await.unwrap();
            // The request sent while paused is answered now, and memory survived.
            let answer = exchange_within(&mut held, b"", &["END\r\n"], Duration::from_secs(5))
                .await
                .unwrap();
            assert!(answer.contains("kept"), "{answer}");
        }

        #[tokio::test]
        async fn stop_refuses_and_start_empties_memory_on_the_same_addr() {
            let (_provider, mc) = memcached().await;
            let addr = mc.addr();
            assert_eq!(mc_set(&addr, "k", "v").await.unwrap(), "STORED\r\n");
            let mut open = TcpStream::connect(&addr).await.unwrap();
            mc.stop().await.unwrap();
            let started = Instant::now();
            assert!(
                mc_get(&addr, "k").await.is_err(),
                "a stopped server answered"
            );
            let on_open = exchange_within(
                &mut open,
                b"get k\r\n",
                &["END\r\n"],
                Duration::from_secs(5),
            )
            .await;
            assert!(
                on_open.is_err(),
                "an open connection to a stopped server answered"
            );
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "failing took {:?}",
                started.elapsed()
            );
            mc.stop().await.unwrap(); // stopping twice is fine
            mc.start().await.unwrap();
            assert_eq!(mc.addr(), addr);
            assert_eq!(mc_get(&addr, "k").await.unwrap(), "END\r\n");
            assert_eq!(mc_set(&addr, "k", "v2").await.unwrap(), "STORED\r\n");
            // start on a running server restarts it: memory is empty again.
            mc.start().await.unwrap();
            assert_eq!(mc.addr(), addr);
            assert_eq!(mc_get(&addr, "k").await.unwrap(), "END\r\n");
        }

        #[tokio::test]
        async fn redis_stop_start_empties_memory() {
            let provider = provider().await;
            let redis = provider.redis().await.unwrap();
            let addr = redis.addr();
            let limit = Duration::from_secs(5);
            assert_eq!(
                request(&addr, b"SET k v\r\n", &["\r\n"], limit)
                    .await
                    .unwrap(),
                "+OK\r\n"
            );
            redis.stop().await.unwrap();
            assert!(request(&addr, b"PING\r\n", &["\r\n"], limit).await.is_err());
            redis.start().await.unwrap();
            assert_eq!(redis.addr(), addr);
            assert_eq!(
                request(&addr, b"GET k\r\n", &["\r\n"], limit)
                    .await
                    .unwrap(),
                "$-1\r\n"
            );
        }

        #[tokio::test]
        async fn cut_resets_connections_and_heal_restores_them() {
            let (_provider, mc) = memcached().await;
            let addr = mc.addr();
            assert_eq!(mc_set(&addr, "k", "survives").await.unwrap(), "STORED\r\n");
            let mut open = TcpStream::connect(&addr).await.unwrap();
            exchange(&mut open, b"version\r\n", &["\r\n"])
                .await
                .unwrap();
            mc.cut().await.unwrap();
            let started = Instant::now();
            let on_open = exchange_within(
                &mut open,
                b"get k\r\n",
                &["END\r\n"],
                Duration::from_secs(5),
            )
            .await;
            assert!(on_open.is_err(), "an open connection crossed a cut");
            let fresh = request(&addr, b"version\r\n", &["\r\n"], Duration::from_secs(5)).await;
            assert!(fresh.is_err(), "a new connection crossed a cut");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "failing took {:?}",
                started.elapsed()
            );
            mc.heal().await.unwrap();
            assert!(mc_get(&addr, "k").await.unwrap().contains("survives"));
        }

        #[tokio::test]
        async fn blackhole_stalls_and_heal_delivers() {
            let (_provider, mc) = memcached().await;
            let addr = mc.addr();
            assert_eq!(mc_set(&addr, "k", "held").await.unwrap(), "STORED\r\n");
            let mut open = TcpStream::connect(&addr).await.unwrap();
            exchange(&mut open, b"version\r\n", &["\r\n"])
                .await
                .unwrap();
            mc.blackhole().await.unwrap();
            let stalled = exchange_within(&mut open, b"get k\r\n", &["END\r\n"], HUNG).await;
            assert_eq!(stalled.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
            let fresh = request(&addr, b"version\r\n", &["\r\n"], HUNG).await;
            assert_eq!(fresh.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
            mc.heal().await.unwrap();
            let late = exchange_within(&mut open, b"", &["END\r\n"], Duration::from_secs(5))
                .await
                .unwrap();
            assert!(late.contains("held"), "{late}");
        }

        #[tokio::test]
        async fn latency_is_added_per_chunk_in_both_directions() {
            let (_provider, mc) = memcached().await;
            let mut stream = TcpStream::connect(mc.addr()).await.unwrap();
            let round_trip = async |stream: &mut TcpStream| {
                let started = Instant::now();
                exchange(stream, b"version\r\n", &["\r\n"]).await.unwrap();
                started.elapsed()
            };
            let base = round_trip(&mut stream).await;
            mc.set_latency(Duration::from_millis(150)).await.unwrap();
            let slow = round_trip(&mut stream).await;
            assert!(
                slow >= Duration::from_millis(300),
                "base {base:?}, with latency {slow:?}"
            );
            mc.set_latency(Duration::ZERO).await.unwrap();
            let fast = round_trip(&mut stream).await;
            assert!(
                fast < Duration::from_millis(150),
                "base {base:?}, after removal {fast:?}"
            );
            eprintln!("round trip: {base:?} plain, {slow:?} with 2 x 150 ms, {fast:?} after");
        }

        #[tokio::test]
        async fn memcached_options_are_applied() {
            let provider = provider().await;
            let big = "x".repeat(1_500_000);
            let default = provider.memcached().await.unwrap();
            let refused = mc_set(&default.addr(), "big", &big).await.unwrap();
            assert!(refused.contains("SERVER_ERROR"), "{refused}");
            let opts = MemcachedOptions {
                memory_mb: 32,
                item_size_max: Some(2 * 1024 * 1024),
                extra_args: vec!["-c".to_owned(), "128".to_owned()],
            };
            let roomy = provider.memcached_with(opts).await.unwrap();
            assert_eq!(
                mc_set(&roomy.addr(), "big", &big).await.unwrap(),
                "STORED\r\n"
            );
            let stats = request(
                &roomy.addr(),
                b"stats settings\r\n",
                &["END\r\n"],
                Duration::from_secs(5),
            )
            .await
            .unwrap();
            assert!(stats.contains("STAT maxbytes 33554432\r\n"), "{stats}");
            assert!(stats.contains("STAT maxconns 128\r\n"), "{stats}");
            assert!(stats.contains("STAT item_size_max 2097152\r\n"), "{stats}");
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn works_on_a_multi_thread_runtime() {
            let (_provider, mc) = memcached().await;
            assert_eq!(mc_set(&mc.addr(), "k", "v").await.unwrap(), "STORED\r\n");
            mc.stop().await.unwrap();
            mc.start().await.unwrap();
            assert_eq!(mc_get(&mc.addr(), "k").await.unwrap(), "END\r\n");
        }

        /// The server outlives the runtime that created it and is dropped
        /// with no runtime at all; the proxy keeps forwarding meanwhile.
        #[test]
        fn outlives_its_runtime_and_drops_without_one() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (provider, mc) = rt.block_on(memcached());
            drop(rt);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let addr = mc.addr();
            assert_eq!(rt.block_on(mc_set(&addr, "k", "v")).unwrap(), "STORED\r\n");
            drop(rt);
            drop(mc);
            drop(provider);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            assert!(
                rt.block_on(mc_get(&addr, "k")).is_err(),
                "a dropped server answered"
            );
        }
    };
}
