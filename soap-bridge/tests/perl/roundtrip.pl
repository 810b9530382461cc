#!/usr/bin/perl
# A real SOAP::Lite client, built exactly like the original distribution's
# test clients (only the URL differs), checking that what it stores comes
# back as the same Perl data. Usage: roundtrip.pl URL [readable]
# Prints one line per check; exits non-zero on the first failure.
use strict;
use warnings;
use SOAP::Lite;

my ($url, $readable) = @ARGV;
die "usage: $0 URL [readable]\n" unless $url;
my $soap = SOAP::Lite->readable($readable ? 1 : 0)->uri('urn:MemcachedSOAPClass')->proxy($url);
my $checks = 0;

sub fail { print "FAIL: @_\n"; exit 1 }
sub ok { my ($cond, $what) = @_; fail($what) unless $cond; $checks++; print "ok $what\n" }

# Deep comparison with Perl's string equality at the leaves.
sub same {
    my ($a, $b) = @_;
    return 0 if ref($a) ne ref($b);
    if (ref $a eq 'HASH') {
        return 0 unless join("\0", sort keys %$a) eq join("\0", sort keys %$b);
        for (keys %$a) { return 0 unless same($a->{$_}, $b->{$_}) }
        return 1;
    }
    if (ref $a eq 'ARRAY') {
        return 0 unless @$a == @$b;
        for (0 .. $#$a) { return 0 unless same($a->[$_], $b->[$_]) }
        return 1;
    }
    return defined($a) && defined($b) ? $a eq $b : !defined($a) && !defined($b);
}

sub call {
    my ($method, @args) = @_;
    my $r = $soap->$method(@args);
    fail("$method: fault " . $r->faultcode . ': ' . $r->faultstring) if $r->fault;
    return $r->result;
}

my $status = call('status');
ok($status =~ /OK/, "status contains OK ($status)");

# LDAP-like attributes, as setTest.pl sends them, plus the awkward cases.
my %attrs = (
    uid                 => 'jdoe',
    cn                  => 'Le Vengeur Masqu' . chr(0xe9),    # Latin-1 byte string
    sn                  => 'Doe',
    givenName           => 'John',
    mail                => 'john.doe@example.org',
    boitier             => '77777',                          # xsd:int on the wire
    APT_APT             => '00000',                          # stays a string
    employeeNumber      => '0042',
    telephoneNumber     => '+33 1 23 45 67 89',
    roomNumber          => '12',
    big                 => '5000000000',                     # xsd:long
    ratio               => '1.5',                            # xsd:float
    plus                => '+5',
    empty               => '',
    xmlish              => 'a<b>&c"d\'e]]>f',
    url                 => 'http://example.org/x?a=1&b=2',
    profil_applicatif   => 'admin;user;guest',
    APT_GROUPS          => 'g1,g2,g3',
    multiline           => "line1\nline2\ttab",
    description         => 'x' x 3000,                       # ~3 KB value
);
ok(keys(%attrs) == 20, '20 attributes');

# A literal list keeps the pair order stable from run to run.
my @pairs = map { ($_ => $attrs{$_}) } sort keys %attrs;
my $id = call('setSession', @pairs);
ok($id =~ /^[0-9a-f]{32}$/, "setSession returned an id ($id)");

my $got = call('getSession', $id);
ok(ref $got eq 'HASH', 'getSession returned a hash');
ok($got->{_session_id} eq $id, '_session_id is the id');
for my $k (sort keys %attrs) {
    ok(defined $got->{$k} && $got->{$k} eq $attrs{$k}, "field $k comes back eq");
}
ok($got->{cn} eq "Le Vengeur Masqu\xe9" && length($got->{cn}) == 17, 'Latin-1 value is the same 17 bytes');

# Nested arrays and hashes, and a key that forces the Map form.
my %nested = (
    list => [1, 'two', [3, [4, 'five']], { k => 'v' }],
    h    => { k => 'v', n => 5, inner => { deep => [ 'a', 'b' ] } },
    xml  => 'map form',
);
my $nid = call('setSession', map { ($_ => $nested{$_}) } sort keys %nested);
my $ngot = call('getSession', $nid);
delete $ngot->{_session_id};
ok(same($ngot, \%nested), 'nested array/hash round trip');

# An unknown, well-formed id: an empty result, not a fault.
my $r = $soap->getSession('0123456789abcdef0123456789abcdef');
ok(!$r->fault && defined $r->result && $r->result eq '', 'unknown id gives an empty result');

# An invalid id: a Client fault.
$r = $soap->getSession('not-hex!');
ok($r->fault && $r->faultcode =~ /Client$/, 'invalid id is a Client fault (' . ($r->faultstring // '') . ')');

# An unknown method: a Client fault.
$r = $soap->noSuchMethod();
ok($r->fault && $r->faultstring =~ /Failed to locate method \(noSuchMethod\)/, 'unknown method is a Client fault');

# The bridge's additions, from the same client.
ok(call('updateSession', $id, { mail => 'new@example.org', sn => undef }) eq '1', 'updateSession');
$got = call('getSession', $id);
ok($got->{mail} eq 'new@example.org' && !exists $got->{sn} && $got->{uid} eq 'jdoe', 'update changed only the given fields');
ok(call('touchSession', $id) eq '1', 'touchSession');
my $found = call('findByPrincipal', 'jdoe');
ok(ref $found eq 'HASH' && $found->{_session_id} eq $id, 'findByPrincipal');
ok(call('deleteSession', $id) eq '1', 'deleteSession');
ok(call('getSession', $id) eq '', 'deleted session is gone');
ok(call('deleteSession', $id) eq '0', 'second delete says false');

print "PASS $checks checks\n";
