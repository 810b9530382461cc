#!/usr/bin/perl
# A Perl node of the original (Apache::Session::Memorycached's way: Cache::
# Memcached, Storable) reads a session straight from memcached, as the
# bridge wrote it with `--codec storable`. Usage: storable_read.pl H:P ID
# Prints "attr KEY HEX" per scalar field (HEX: the Perl string's bytes), or
# "missing" when memcached holds no session under ID.
use strict;
use warnings;
use Cache::Memcached;

my ( $server, $id ) = @ARGV;
die "usage: $0 HOST:PORT ID\n" unless $server && $id;
my $held = Cache::Memcached->new( { servers => [$server] } )->get($id);
unless ( ref $held eq 'HASH' ) {
    print "missing\n";
    exit 0;
}
print "attr $_ " . unpack( 'H*', $held->{$_} ) . "\n"
  for grep { defined $held->{$_} && !ref $held->{$_} } sort keys %$held;
