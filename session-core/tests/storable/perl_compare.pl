#!/usr/bin/perl
# Thaws Storable images with real Perl and compares them to expected data,
# strictly: same structure, same hash keys, strings `eq`, and the same kind
# of scalar (undef / integer / float / string), so "42" and 42 differ.
#
# stdin, one case per line:  NAME <TAB> MODE <TAB> HEX_IMAGE <TAB> HEX_EXPECTED
#   MODE storable: HEX_EXPECTED is another Storable image to thaw and compare
#   MODE json:     HEX_EXPECTED is UTF-8 JSON text (JSON::PP decodes it;
#                  JSON true/false are expected as the integers 1/0)
# stdout: "ok NAME" or "not ok NAME: why", one line per case.
use strict;
use warnings;
use Storable qw(thaw);
use JSON::PP;
use B;

sub kind {
    my ($sv) = @_;
    return 'undef' unless defined $sv;
    return 'ref:' . ref($sv) if ref $sv && !JSON::PP::is_bool($sv);
    return 'int' if JSON::PP::is_bool($sv);
    my $flags = B::svref_2object(\$sv)->FLAGS;
    return 'str' if $flags & B::SVf_POK;
    return 'int' if $flags & B::SVf_IOK;
    return 'num' if $flags & B::SVf_NOK;
    return 'other';
}

sub same {
    my ($got, $want, $path) = @_;
    my ($kg, $kw) = (kind($got), kind($want));
    return "$path: $kg instead of $kw" if $kg ne $kw;
    if ($kg eq 'ref:HASH') {
        my @g = sort keys %$got;
        my @w = sort keys %$want;
        return "$path: keys (@g) instead of (@w)" if "@g" ne "@w" || @g != @w;
        for my $k (@w) {
            my $why = same($got->{$k}, $want->{$k}, "$path\{$k}");
            return $why if $why;
        }
        return '';
    }
    if ($kg eq 'ref:ARRAY') {
        return "$path: " . @$got . " items instead of " . @$want if @$got != @$want;
        for my $i (0 .. $#$want) {
            my $why = same($got->[$i], $want->[$i], "$path\[$i]");
            return $why if $why;
        }
        return '';
    }
    return same($$got, $$want, "\${$path}") if $kg eq 'ref:SCALAR';
    return "$path: unexpected $kg" if $kg =~ /^ref:|other/;
    return '' if $kg eq 'undef';
    my $w = JSON::PP::is_bool($want) ? ($want ? 1 : 0) : $want;
    if ($kg eq 'str') {
        return $got eq $w ? '' : "$path: string " . B::perlstring($got) . " ne " . B::perlstring($w);
    }
    return $got == $w ? '' : "$path: number $got != $w";
}

binmode STDOUT, ':utf8';
my $json = JSON::PP->new->utf8->allow_nonref;
while (my $line = <STDIN>) {
    chomp $line;
    my ($name, $mode, $image, $expected) = split /\t/, $line;
    my $got = eval { thaw(pack 'H*', $image) };
    if (!defined $got) {
        my $err = $@ || 'thaw returned undef';
        $err =~ s/\s+/ /g;
        print "not ok $name: thaw failed: $err\n";
        next;
    }
    my $want = $mode eq 'json' ? $json->decode(pack 'H*', $expected) : thaw(pack 'H*', $expected);
    my $why = same($got, $want, '$data');
    print $why ? "not ok $name: $why\n" : "ok $name\n";
}
