#!/usr/bin/perl
# A Perl node of the original deployment: Apache::Session (Debian's
# libapache-session-perl) with a store that does what
# Apache::Session::Memorycached 2.2 does with Cache::Memcached — the
# session hash handed to Cache::Memcached as is (so it is stored as
# Storable nfreeze, flags 1), the reverse key md5_hex(principal) -> id as a
# plain string (flags 0) written first, "<principal>_MD5" stamped into the
# session, no key prefix, ids from Generate::MD5. Only the CPAN module
# itself is missing from Debian; this file reproduces its store.
#
# usage: perl memorycached_node.pl MODE host:port...
# stdin and stdout: one JSON object per line.
#   write   {"data":{...}}               -> {"id":ID,"data":SESSION}
#   read    {"id":ID}                    -> {"id":ID,"data":SESSION|null}
#   find    {"value":UID}                -> {"id":ID|null,"data":SESSION|null}
#   modify  {"id":ID,"set":{...}}        -> {"id":ID,"data":SESSION}
# The principal field is "uid". Strings from the JSON input are stored as
# Perl byte strings whenever they fit in Latin-1 (utf8::downgrade), as in
# a Perl application that never decodes its input; others stay UTF-8.
# SESSION is always read back from memcached: what Perl's thaw made of the
# stored bytes (Perl's own nfreeze stores 5000000000 as a string, so it
# prints as one; a Rust integer thaws to a Perl integer and prints bare).
# A "compress" key in the write input sets Cache::Memcached's
# compress_threshold (gzip, flags 2) to that many bytes.
use strict;
use warnings;
use JSON::PP;
use B ();
use Digest::MD5 ();

package Test::Memorycached::Store {
    use Cache::Memcached;
    use Digest::MD5 qw(md5_hex);

    sub new { my ($class) = @_; return bless {}, $class }

    sub memd {
        my ($session) = @_;
        my $args = $session->{args};
        my $m = Cache::Memcached->new({ servers => $args->{servers} });
        $m->set_compress_threshold($args->{compress}) if $args->{compress};
        return $m;
    }

    sub insert {
        my ($self, $session) = @_;
        my $m = memd($session);
        $m->set($session->{data}{_session_id}, $session->{data}, $session->{args}{timeout} || 0)
            or die "insert failed";
    }

    sub update {
        my ($self, $session) = @_;
        my $m = memd($session);
        my $timeout = $session->{args}{timeout} || 0;
        if (my $p = $session->{args}{principal}) {
            my $kv = md5_hex($session->{data}{$p});
            $m->set($kv, $session->{data}{_session_id}, $timeout) or die "reverse key failed";
            $session->{data}{ $p . '_MD5' } = $kv;
        }
        $m->set($session->{data}{_session_id}, $session->{data}, $timeout) or die "update failed";
    }

    sub materialize {
        my ($self, $session) = @_;
        $session->{data} = memd($session)->get($session->{data}{_session_id});
    }

    sub remove {
        my ($self, $session) = @_;
        memd($session)->delete($session->{data}{_session_id});
    }

    sub close { }
}

package Test::Memorycached {
    use Apache::Session;
    use Apache::Session::Lock::Null;
    use Apache::Session::Generate::MD5;
    our @ISA = ('Apache::Session');

    sub populate {
        my ($self) = @_;
        $self->{object_store} = Test::Memorycached::Store->new($self);
        $self->{lock_manager} = Apache::Session::Lock::Null->new($self);
        $self->{generate}     = \&Apache::Session::Generate::MD5::generate;
        $self->{validate}     = \&Apache::Session::Generate::MD5::validate;
        # Memorycached's serializer is a no-op: Cache::Memcached freezes.
        $self->{serialize}   = sub { };
        $self->{unserialize} = sub { };
        return $self;
    }
}

package main;

my $mode = shift @ARGV or die "usage: $0 write|read|find|modify host:port...\n";
my @servers = @ARGV or die "no servers\n";
my $json = JSON::PP->new->utf8->canonical->allow_nonref;
my %args = (servers => \@servers, principal => 'uid', timeout => 0);

sub bytes_where_possible {
    my ($v) = @_;
    if (ref $v eq 'HASH') { return { map { bytes_where_possible($_) => bytes_where_possible($v->{$_}) } keys %$v } }
    if (ref $v eq 'ARRAY') { return [ map { bytes_where_possible($_) } @$v ] }
    if (defined $v && !ref $v && B::svref_2object(\$v)->FLAGS & B::SVf_POK()) { utf8::downgrade($v, 1) }
    return $v;
}

sub plain { my ($h) = @_; return { %$h } }

binmode STDOUT;
$| = 1;
while (my $line = <STDIN>) {
    my $in = $json->decode($line);
    my $out;
    if ($mode eq 'write') {
        local $args{compress} = $in->{compress};
        my %s;
        tie %s, 'Test::Memorycached', undef, \%args;    # inserts {_session_id}
        my $data = bytes_where_possible($in->{data});
        $s{$_} = $data->{$_} for keys %$data;
        my $id = $s{_session_id};
        untie %s;                                        # update: reverse key, then session
        my %r;
        tie %r, 'Test::Memorycached', $id, \%args;
        $out = { id => $id, data => plain(\%r) };
        untie %r;
    } elsif ($mode eq 'read') {
        my %r;
        tie %r, 'Test::Memorycached', $in->{id}, \%args;
        my $data = tied(%r)->{data};
        $out = { id => $in->{id}, data => ref $data eq 'HASH' ? plain($data) : undef };
        untie %r;
    } elsif ($mode eq 'find') {
        my $m = Cache::Memcached->new({ servers => \@servers });
        my $id = $m->get(Digest::MD5::md5_hex($in->{value}));
        my $data = defined $id ? $m->get($id) : undef;
        $out = { id => $id, data => ref $data eq 'HASH' ? $data : undef };
    } elsif ($mode eq 'modify') {
        my %s;
        tie %s, 'Test::Memorycached', $in->{id}, \%args;
        my $set = bytes_where_possible($in->{set});
        $s{$_} = $set->{$_} for keys %$set;
        untie %s;
        my %r;
        tie %r, 'Test::Memorycached', $in->{id}, \%args;
        $out = { id => $in->{id}, data => plain(\%r) };
        untie %r;
    } else {
        die "unknown mode $mode\n";
    }
    print $json->encode($out), "\n";
}
