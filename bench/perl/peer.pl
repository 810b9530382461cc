#!/usr/bin/perl
# The Perl original's session path, as a peer of `benches/peers.rs`: what
# Apache::Session::Memorycached does per request (tie = get and thaw, untie
# = freeze and set), through Cache::Memcached, which stores a hash reference
# Storable-frozen (nfreeze) with flags 1, exactly as the original's nodes do.
#
# Usage: peer.pl SERVER KEY
#   Stores a 10-field session under KEY, prints "ready", reads one line
#   "START END" (epoch seconds) from stdin, waits until START, then loops
#   get + change one field + set until END. Prints one line:
#   "OPS ERRORS FIRST_ERROR_OR_- LATENCY_US..." (every operation's latency).
use strict;
use warnings;
use Cache::Memcached;
use Time::HiRes qw(time sleep);

my ($server, $key) = @ARGV;
die "usage: peer.pl SERVER KEY\n" unless defined $key;
$| = 1;
my $memd = Cache::Memcached->new({ servers => [$server] });
my %session = (
    _session_id         => $key,
    uid                 => 'jdupont',
    cn                  => 'Jean Dupont',
    mail                => 'jean.dupont@example.org',
    givenName           => 'Jean',
    sn                  => 'Dupont',
    groups              => 'admins; staff; vpn-users',
    ipAddr              => '192.0.2.10',
    _utime              => 1700000000,
    profile             => 'p' x 200,
);
$memd->set($key, \%session, 600) or die "setting $key on $server failed\n";
print "ready\n";
my ($start, $end) = split ' ', (<STDIN> // die "no start time on stdin\n");
my $wait = $start - time;
sleep($wait) if $wait > 0;
my ($ops, $errors, $first) = (0, 0, '-');
my @latencies;
while ((my $t0 = time) < $end) {
    my $s = $memd->get($key);
    if (ref $s eq 'HASH') {
        $s->{seen} = $ops;
        unless ($memd->set($key, $s, 600)) {
            $errors++;
            $first = 'set_failed' if $first eq '-';
        }
    } else {
        $errors++;
        $first = 'get_missed' if $first eq '-';
    }
    push @latencies, int((time - $t0) * 1e6);
    $ops++;
}
print join(' ', $ops, $errors, $first, @latencies), "\n";
