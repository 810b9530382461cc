#!/usr/bin/perl
# A SOAP::Lite client writes a session through a bridge started with
# `--codec storable`; then a Perl node reads the same session straight from
# memcached with Cache::Memcached, as the original module does (Storable,
# flags 1), and finds every field `eq`. Usage: storable_node.pl URL H:P
use strict;
use warnings;
use SOAP::Lite;
use Cache::Memcached;

my ($url, $server) = @ARGV;
die "usage: $0 URL HOST:PORT\n" unless $url && $server;
my $soap = SOAP::Lite->uri('urn:MemcachedSOAPClass')->proxy($url);
my %fields = (
    uid  => 'jdoe',
    cn   => "Le Vengeur Masqu\xe9",
    zip  => '00042',
    n    => 77777,
    mail => 'a<b>&c"d',
);
my $r = $soap->setSession(map { ($_ => $fields{$_}) } sort keys %fields);
die 'setSession fault: ' . $r->faultstring . "\n" if $r->fault;
my $id = $r->result;
my $memd = Cache::Memcached->new({ servers => [$server] });
my $held = $memd->get($id);
die "Perl node: no session $id in memcached\n" unless ref $held eq 'HASH';
for my $k (sort keys %fields) {
    die "field $k: Perl node read '" . ($held->{$k} // 'undef') . "'\n"
        unless defined $held->{$k} && $held->{$k} eq $fields{$k};
}
die "field _session_id: '" . ($held->{_session_id} // 'undef') . "'\n"
    unless ($held->{_session_id} // '') eq $id;
print "PASS storable session $id read by Cache::Memcached\n";
