#!/usr/bin/perl
# Golden vectors for session-core's Storable codec, from real Perl.
#
# Run from anywhere: perl session-core/tests/storable/gen_vectors.pl
# For every case it writes vectors/<name>.bin (the bytes memcached would
# hold) and vectors/<name>.json:
#   {"flags": F, "value": V}   V is what Perl's own thaw gives, as JSON
#                              (JSON::PP, characters as characters)
#   {"flags": F, "error": OP}  the codec must refuse it, naming opcode OP
# F is the memcached flags Cache::Memcached would use: 1 (Storable), or
# 3 (Storable + gzip, as Cache::Memcached writes with compress_threshold).
# Needs only Debian's perl (Storable, JSON::PP, Hash::Util, Scalar::Util,
# Tie::Hash, Compress::Zlib): compressed vectors use Compress::Zlib's
# memGzip, the call Cache::Memcached 1.30 makes, and compress, the one
# older Cache::Memcached versions made.
use strict;
use warnings;
use utf8;
use File::Basename qw(dirname);
use File::Spec;
use File::Temp qw(tempdir);
use Storable qw(nfreeze thaw nstore);
use JSON::PP;
use Hash::Util qw(lock_keys lock_keys_plus);
use Scalar::Util qw(weaken);
use Tie::Hash ();    # Tie::StdHash
use Compress::Zlib ();

$Storable::canonical = 1;    # stable files; the decoder does not care
my $dir = File::Spec->catdir(dirname(File::Spec->rel2abs($0)), 'vectors');
mkdir $dir unless -d $dir;
unlink glob("$dir/*.bin"), glob("$dir/*.json");
my $json = JSON::PP->new->canonical->utf8->allow_nonref;

sub write_file {
    my ($name, $bytes) = @_;
    open my $fh, '>:raw', "$dir/$name" or die "$dir/$name: $!";
    print $fh $bytes;
    close $fh or die $!;
}

# A value case: Perl freezes it, thaws its own bytes, and the thawed data
# (as JSON) is what the Rust decoder must produce.
sub value_case {
    my ($name, $ref, %opt) = @_;
    my $bytes = $opt{bytes} // nfreeze($ref);
    my $thawed = thaw($opt{thaw} // $bytes);
    die "$name: Perl cannot thaw its own vector" unless defined $thawed;
    my $flags = 1;
    if (my $c = $opt{compress}) {
        $bytes = $c eq 'gzip' ? Compress::Zlib::memGzip($bytes) : Compress::Zlib::compress($bytes);
        $flags |= 2;    # Cache::Memcached's F_COMPRESS
    }
    my $value = ref $thawed eq 'SCALAR' ? $$thawed : $thawed;
    write_file("$name.bin", $bytes);
    write_file("$name.json", $json->encode({ flags => $flags, value => $value }) . "\n");
}

sub error_case {
    my ($name, $ref, $opcode) = @_;
    write_file("$name.bin", nfreeze($ref));
    write_file("$name.json", $json->encode({ flags => 1, error => $opcode }) . "\n");
}

sub with_minor {
    my ($bytes, $minor) = @_;
    substr($bytes, 1, 1) = chr($minor);
    return $bytes;
}

my $id = 'd4528a1f3b7e2c9d0e1f2a3b4c5d427a';
my %session = (
    _session_id => $id,
    uid         => 'jdoe',
    uid_MD5     => '9b1f8ae9c38ea2d8b6d2a1f2e4a64b7b',
    n           => 42,
    list        => [ 1, 2, 3 ],
    prefs       => { lang => 'fr', nested => { a => [ {}, [], undef ] } },
);

# --- hashes, as the original stores sessions -------------------------------
value_case('session', \%session);
value_case('minimal_session', { _session_id => 'abc' });
value_case('empty_hash', {});
value_case('utf8_keys', { 'clé' => 1, '€' => 2, 'plain' => 3, '日本' => '語' });
value_case('wasutf8_key_only', do { my $k = "caf\x{e9}"; utf8::upgrade($k); +{ $k => 'v' } });
{
    my %locked = (a => 1, b => 2);
    lock_keys(%locked);
    value_case('restricted_hash', \%locked);
    my %plus = (a => 1);
    lock_keys_plus(%plus, 'reserved');    # a placeholder entry
    value_case('restricted_hash_placeholder', \%plus);
}

# --- scalars ----------------------------------------------------------------
my %ints;
my @ints = (0, 1, -1, 127, -128, 128, -129, 255, 256, 65535, 2147483647, -2147483648,
    2147483648, -2147483649, 5000000000, -5000000000, 9223372036854775807,
    -9223372036854775808, 18446744073709551615);
$ints{"i$_"} = $ints[$_] for 0 .. $#ints;
value_case('integers', \%ints);
value_case('doubles', { a => 1.5, b => -0.25, c => 1e100, d => 3.14159, e => 0.1 + 0.2 });
value_case('numeric_strings', { a => '42', b => '007', c => '1.50', d => '-0', e => '1e3' });
value_case('undef', { u => undef, list => [ undef, 1, undef ] });
{
    my @holes;
    $holes[3] = 'x';    # 0..2 never existed: SX_SV_UNDEF in the image
    value_case('array_holes', { holes => \@holes });
}
value_case('byte_strings', { empty => '', ascii => 'bar', nul => "a\0b", high => "\x01\x7f\x80\xff" });
# Latin-1 text Perl holds as bytes (no UTF-8 flag): one char per byte.
{
    my %latin1 = (cafe => "caf\xe9", naive => "na\xefve", ao => "S\xe3o Paulo");
    utf8::downgrade($_) for values %latin1;
    value_case('latin1_bytes', \%latin1);
}
# The same text with the UTF-8 flag on, and text beyond Latin-1.
{
    my %utf8 = (cafe => "caf\xe9", euro => "12 €", cjk => '日本語', emoji => "\x{1F600}");
    utf8::upgrade($_) for values %utf8;
    value_case('utf8_strings', \%utf8);
}
# UTF-8 bytes never decoded (the CGI habit): two chars "\xc3\xa9" to Perl.
value_case('undecoded_utf8_bytes', { name => "caf\xc3\xa9" });
value_case('long_strings', {
    bytes300 => 'x' x 300,
    latin300 => "\xe9" x 300,
    utf8_300 => do { my $s = '€' x 300; $s },
    big      => join('', map { chr(65 + $_ % 26) } 0 .. 69_999),
    exact255 => 'y' x 255,
    exact256 => 'z' x 256,
});

# --- structure ----------------------------------------------------------------
{
    my $deep = 'bottom';
    $deep = [$deep] for 1 .. 50;
    value_case('nested_50', { deep => $deep, map => { a => { b => { c => [ { d => [] } ] } } } });
}
value_case('top_level_array', [ 1, 'two', [3] ]);
value_case('top_level_scalar', \'just a string');

# --- header versions: Storable 2.x wrote lower minors (2.15: 7, 2.51: 10) --
{
    my $bytes = nfreeze(\%session);
    for my $minor (4, 7, 10) {
        value_case("session_minor_$minor", \%session, bytes => with_minor($bytes, $minor));
    }
    my $tmp = tempdir(CLEANUP => 1);
    nstore(\%session, "$tmp/s") or die;
    open my $fh, '<:raw', "$tmp/s" or die;
    my $file = do { local $/; <$fh> };
    # nstore's file form: "pst0" then the same image; thaw wants it without.
    die "nstore file does not start with pst0" unless substr($file, 0, 4) eq 'pst0';
    value_case('session_nstore_file', \%session, bytes => $file, thaw => substr($file, 4));
}

# --- compressed by Cache::Memcached (flags 2 | 1) --------------------------------
{
    my %big = (%session, blob => 'compressible ' x 2000);
    value_case('compressed_gzip', \%big, compress => 'gzip');    # memGzip, Cache::Memcached 1.x
    value_case('compressed_zlib', \%big, compress => 'zlib');    # compress, older versions
}

# --- refused: the codec must name the opcode --------------------------------
error_case('blessed', { obj => bless({ a => 1 }, 'Some::Class') }, 'SX_BLESS');
{
    no warnings 'once';
    local $Storable::Deparse = 1;
    error_case('code_ref', { cb => sub { 42 } }, 'SX_CODE');
}
{
    my $shared = [ 1, 2 ];
    error_case('shared_ref', { a => $shared, b => $shared }, 'SX_OBJECT');
    my %cyclic;
    $cyclic{self} = \%cyclic;
    error_case('cyclic_ref', \%cyclic, 'SX_OBJECT');
    %cyclic = ();
}
error_case('scalar_ref', { r => \'x' }, 'SX_REF');
{
    # Canonical order stores key "a" (the weak copy) first, so the weak
    # reference itself appears, not a back reference to its target.
    my $target = [1];
    my %h = (a => $target, b => $target);
    weaken($h{a});
    error_case('weak_ref', \%h, 'SX_WEAKREF');
}
{
    tie my %tied, 'Tie::StdHash';
    %tied = (a => 1);
    error_case('tied_hash', { t => \%tied }, 'SX_TIED_HASH');
}
# qr// is an object of class Regexp: SX_BLESS comes first, then SX_REGEXP.
error_case('regexp', { re => qr/ab+c/i }, 'SX_BLESS');
error_case('vstring', { v => v1.2.3 }, 'SX_VSTRING');

print "wrote ", scalar(() = glob("$dir/*.bin")), " vectors to $dir (Storable $Storable::VERSION)\n";

