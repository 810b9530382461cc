//! Routing checked against real Perl Cache::Memcached 1.30: its own
//! `get_sock` decides, with `sock_to_host` replaced by a stub that says
//! which hosts are dead, so the bucket and rehash code under test is
//! Perl's, unmodified. Then real data crosses between Perl and us through
//! two real memcached servers, both ways.

// Test code: a panic is the failure report. clippy's allow-unwrap-in-tests
// covers `#[test]` functions only, not the shared check functions here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeSet, HashMap};

use backend_memcached::{
    FailurePolicy, MemcachedConfig, MemcachedStore, Protocol, Router, Routing, ServerSpec,
};
use common::{Server, dead_port, memcacheds, run_perl, spec, test_keys};
use session_core::{Store, Ttl};

/// Reads `host[:port[:weight]]` specs from @ARGV (weight as Perl's
/// `[host, weight]`), dead hosts from $ENV{DEAD}, keys from stdin; prints
/// `key<TAB>host` (or `undef`) from Cache::Memcached's own `get_sock`.
const PERL_ROUTE: &str = r#"
use strict; use warnings;
use Cache::Memcached;
my %dead = map { $_ => 1 } grep { length } split /,/, ($ENV{DEAD} // '');
my @servers = map { my ($h, $p, $w) = split /:/; $w > 1 ? ["$h:$p", $w] : "$h:$p" } @ARGV;
{
    no warnings 'redefine';
    # The only change: no sockets. A dead host answers undef, as when its
    # connect fails; a live one answers its name instead of a socket.
    *Cache::Memcached::sock_to_host = sub {
        my ($self, $host) = @_;
        return $dead{$host} ? undef : "SOCK:$host";
    };
}
my $m = Cache::Memcached->new({ servers => \@servers });
while (my $key = <STDIN>) {
    chomp $key;
    my $s = $m->get_sock($key);
    $s = defined $s ? substr($s, 5) : 'undef';
    print "$key\t$s\n";
}
"#;

fn perl_routes(servers: &[ServerSpec], dead: &[&str], keys: &[String]) -> HashMap<String, String> {
    let args: Vec<String> = servers
        .iter()
        .map(|s| format!("{}:{}:{}", s.host, s.port, s.weight))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let script = format!("$ENV{{DEAD}} = '{}';\n{}", dead.join(","), PERL_ROUTE);
    let out = run_perl(&script, &args, &(keys.join("\n") + "\n"));
    let map: HashMap<String, String> = out
        .lines()
        .map(|l| {
            let (k, h) = l.split_once('\t').expect("key<TAB>host");
            (k.to_owned(), h.to_owned())
        })
        .collect();
    assert_eq!(map.len(), keys.len(), "perl answered every key");
    map
}

fn our_route(router: &Router, servers: &[ServerSpec], dead: &[&str], key: &str) -> String {
    router
        .candidates(key)
        .map(|i| servers[i].addr())
        .find(|a| !dead.contains(&a.as_str()))
        .unwrap_or_else(|| "undef".to_owned())
}

fn three_servers() -> Vec<ServerSpec> {
    vec![
        ServerSpec::new("10.0.0.1", 11211),
        ServerSpec::new("10.0.0.2", 11211).with_weight(2),
        ServerSpec::new("10.0.0.3", 11212),
    ]
}

#[test]
fn perl_bucket_routing_matches_cache_memcached() {
    let servers = three_servers();
    let keys = test_keys(200);
    let router = Router::new(&servers, Routing::Perl);
    let perl = perl_routes(&servers, &[], &keys);
    let mut used = BTreeSet::new();
    for key in &keys {
        let ours = our_route(&router, &servers, &[], key);
        assert_eq!(&ours, &perl[key], "home server of {key:?}");
        assert_eq!(ours, servers[router.server_for(key)].addr());
        used.insert(ours);
    }
    assert_eq!(used.len(), 3, "200 keys use all three servers");
}

#[test]
fn perl_rehash_matches_cache_memcached() {
    let servers = three_servers();
    let keys = test_keys(200);
    let router = Router::new(&servers, Routing::Perl);
    for dead in [
        vec!["10.0.0.2:11211"],
        vec!["10.0.0.1:11211"],
        vec!["10.0.0.3:11212"],
        vec!["10.0.0.1:11211", "10.0.0.3:11212"],
        vec!["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11212"],
    ] {
        let perl = perl_routes(&servers, &dead, &keys);
        for key in &keys {
            assert_eq!(
                our_route(&router, &servers, &dead, key),
                perl[key],
                "rehash of {key:?} with dead {dead:?}"
            );
        }
    }
}

#[test]
fn perl_single_server_does_not_hash() {
    // Weight 1: Perl's single-server shortcut uses the list entry as the
    // host name as-is, so a lone `[host, weight]` entry is broken in Perl
    // (it "connects" to `ARRAY(0x...)`); we route to the server regardless.
    let servers = vec![ServerSpec::new("10.0.0.9", 1)];
    let keys = test_keys(20);
    let router = Router::new(&servers, Routing::Perl);
    let perl = perl_routes(&servers, &[], &keys);
    for key in &keys {
        assert_eq!(our_route(&router, &servers, &[], key), perl[key]);
    }
    let perl_dead = perl_routes(&servers, &["10.0.0.9:1"], &keys);
    for key in &keys {
        assert_eq!(perl_dead[key], "undef");
        assert_eq!(our_route(&router, &servers, &["10.0.0.9:1"], key), "undef");
    }
}

/// Perl sets `key => "value of key"` for every key on stdin (servers in
/// @ARGV as `host:port:weight`), or with `read` as first arg prints
/// `key<TAB>value` for each key found by get_multi and checks `get` agrees.
const PERL_IO: &str = r#"
use strict; use warnings;
use Cache::Memcached;
my $mode = shift @ARGV;
my @servers = map { my ($h, $p, $w) = split /:/; $w > 1 ? ["$h:$p", $w] : "$h:$p" } @ARGV;
my $m = Cache::Memcached->new({ servers => \@servers });
my @keys = map { chomp; $_ } <STDIN>;
if ($mode eq 'write') {
    for my $k (@keys) { $m->set($k, "value of $k", 0) or die "set $k failed"; }
} else {
    my $all = $m->get_multi(@keys);
    for my $k (@keys) {
        my $one = $m->get($k);
        die "get/get_multi disagree on $k" if (defined $one) != (defined $all->{$k});
        print "$k\t$one\n" if defined $one;
    }
}
"#;

fn two_server_specs(servers: &[Server]) -> Vec<ServerSpec> {
    vec![spec(&servers[0]), spec(&servers[1]).with_weight(2)]
}

fn perl_args(servers: &[ServerSpec], mode: &str) -> Vec<String> {
    std::iter::once(mode.to_owned())
        .chain(
            servers
                .iter()
                .map(|s| format!("{}:{}:{}", s.host, s.port, s.weight)),
        )
        .collect()
}

async fn perl_writes_we_read(protocol: Protocol) {
    let running = memcacheds(2).await;
    let servers = two_server_specs(&running);
    let keys = test_keys(60);
    let args = perl_args(&servers, "write");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_perl(PERL_IO, &args, &(keys.join("\n") + "\n"));

    let mut config = MemcachedConfig::with_servers(servers.clone());
    config.protocol = protocol;
    let store = MemcachedStore::connect(config).unwrap();
    let mut per_server: HashMap<String, usize> = HashMap::new();
    for key in &keys {
        let e = store
            .get(key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{key} not found"));
        assert_eq!(e.value, format!("value of {key}").into_bytes());
        assert_eq!(e.flags, 0, "Perl writes plain strings with flags 0");
        *per_server
            .entry(store.server_for(key).to_owned())
            .or_default() += 1;
    }
    assert_eq!(
        per_server.len(),
        2,
        "keys spread over both servers: {per_server:?}"
    );
    // And each key really sits on the server we route it to: a store on
    // that server alone finds it.
    for (i, server) in servers.iter().enumerate() {
        let single =
            MemcachedStore::connect(MemcachedConfig::with_servers(vec![server.clone()])).unwrap();
        for key in &keys {
            let here = single.get(key).await.unwrap().is_some();
            assert_eq!(
                here,
                store.server_for(key) == servers[i].addr(),
                "{key} on {}",
                server.addr()
            );
        }
    }
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let many = store.get_many(&refs).await.unwrap();
    assert!(many.iter().all(Option::is_some));
}

#[tokio::test]
async fn perl_writes_we_read_meta() {
    perl_writes_we_read(Protocol::Meta).await;
}

#[tokio::test]
async fn perl_writes_we_read_classic() {
    perl_writes_we_read(Protocol::Classic).await;
}

#[tokio::test]
async fn we_write_perl_reads() {
    let running = memcacheds(2).await;
    let servers = two_server_specs(&running);
    let keys = test_keys(60);
    let store = MemcachedStore::connect(MemcachedConfig::with_servers(servers.clone())).unwrap();
    for key in &keys {
        store
            .set(key, format!("value of {key}").as_bytes(), 0, Ttl::NEVER)
            .await
            .unwrap();
    }
    let args = perl_args(&servers, "read");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Blocking here is fine: nothing else runs on this test's runtime.
    let out = run_perl(PERL_IO, &args, &(keys.join("\n") + "\n"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 60, "perl found every key:\n{out}");
    for line in lines {
        let (k, v) = line.split_once('\t').unwrap();
        assert_eq!(v, format!("value of {k}"));
    }
}

#[tokio::test]
async fn rehash_agrees_with_perl_on_real_servers() {
    // Perl writes with the middle server dead (its connect is refused, so
    // Cache::Memcached rehashes); we read with the same list and
    // FailurePolicy::Rehash: every key must be found where Perl put it.
    // The dead server is a refused port, not a stopped test-support server:
    // that one's proxy accepts the connect and then resets it, and
    // Cache::Memcached fails the first writes it sends there (until it marks
    // the host dead) instead of rehashing them.
    let live = memcacheds(2).await;
    let dead = dead_port();
    let servers = vec![
        spec(&live[0]),
        ServerSpec::new("127.0.0.1", dead.port).with_weight(2),
        spec(&live[1]),
    ];
    let keys = test_keys(80);
    let args = perl_args(&servers, "write");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_perl(PERL_IO, &args, &(keys.join("\n") + "\n"));

    let mut config = MemcachedConfig::with_servers(servers.clone());
    config.failure = FailurePolicy::Rehash;
    let store = MemcachedStore::connect(config).unwrap();
    let mut moved = 0;
    for key in &keys {
        let e = store.get(key).await.unwrap();
        assert_eq!(
            e.unwrap().value,
            format!("value of {key}").into_bytes(),
            "{key}"
        );
        moved += usize::from(store.server_for(key) == servers[1].addr());
    }
    assert!(
        moved > 10,
        "a good share of keys had the dead server as home ({moved})"
    );
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert!(
        store
            .get_many(&refs)
            .await
            .unwrap()
            .iter()
            .all(Option::is_some)
    );
}
