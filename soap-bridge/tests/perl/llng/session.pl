#!/usr/bin/perl
# LemonLDAP::NG's own session client against the bridge: the Debian modules
# (liblemonldap-ng-common-perl), used unchanged and the way LL::NG's handler
# and portal use them, through Lemonldap::NG::Common::Session with
# storageModule Lemonldap::NG::Common::Apache::Session::SOAP or ::REST.
#
# Usage: session.pl PROTOCOL URL USER PASSWORD CIPHER COMMAND [ARGS...]
#   PROTOCOL  soap | rest
#   URL       soap: the proxy URL (http://HOST/llng/soap);
#             rest: the baseUrl of a session type (http://HOST/llng/sessions/global)
#   CIPHER    how the REST client's __secret is made:
#             KEY          Lemonldap::NG::Common::Crypto under KEY (as LL::NG does)
#             expired:KEY  the same key, but a time one hour old
#             none         no cipher at all (the client then sends no __secret)
#   COMMAND   create UID            a session of kind SSO with fixed attributes;
#                                   prints "id=ID"
#             read ID               prints "attr KEY HEX" per attribute (HEX: the
#                                   Perl string's bytes), or "error=..."
#             update ID KEY=VALUE.. Session->update; prints "updated=0|1"
#             delete ID             Session->remove; prints "removed=0|1"
#             crud UID              create, read, update, delete, checked here;
#                                   prints "PASS" at the end
#             search FIELD VALUE    REST searchOn; prints "found ID" per session
#             all                   REST get_key_from_all_sessions; "found ID" lines
# Whatever the client modules print on STDERR (they report HTTP failures
# there and carry on) is repeated on STDOUT as "stderr: ..." lines, so the
# test sees the status codes. Exits non-zero only on a failed check of crud.
use strict;
use warnings;
use Lemonldap::NG::Common::Session;
use Lemonldap::NG::Common::Crypto;
use Lemonldap::NG::Common::Apache::Session::REST;
use Lemonldap::NG::Handler::Main;

my ( $protocol, $url, $user, $password, $cipher, $command, @args ) = @ARGV;
die "usage: $0 soap|rest URL USER PASSWORD CIPHER COMMAND [ARGS...]\n"
  unless $command;

# The attributes of a new session: LDAP-like, one Latin-1 byte string
# ("\xe9" is not UTF-8), one UTF-8 byte string, one multi-valued.
sub attributes {
    my ($uid) = @_;
    return (
        uid    => $uid,
        cn     => "Le Vengeur Masqu\xe9",
        sn     => "Caf\xc3\xa9",
        mail   => "$uid\@example.com",
        groups => 'admins; users',
    );
}

# The REST client takes its __secret from the handler's shared cipher.
package ExpiredCipher {
    sub new { my ( $class, $real ) = @_; bless { real => $real }, $class }
    sub encrypt { $_[0]{real}->encrypt( time - 3600 ) }
}
if ( $cipher ne 'none' ) {
    my ( $expired, $key ) = $cipher =~ /^(expired:)?(.*)$/s;
    my $real = Lemonldap::NG::Common::Crypto->new($key);
    Lemonldap::NG::Handler::Main->tsv->{cipher} =
      $expired ? ExpiredCipher->new($real) : $real;
}

my %options =
  $protocol eq 'soap'
  ? (
    storageModule        => 'Lemonldap::NG::Common::Apache::Session::SOAP',
    storageModuleOptions => { proxy => $url, User => $user, Password => $password },
  )
  : $protocol eq 'rest' ? (
    storageModule        => 'Lemonldap::NG::Common::Apache::Session::REST',
    storageModuleOptions => {
        baseUrl  => $url,
        user     => $user,
        password => $password,
        realm    => 'soap-bridge',
    },
  )
  : die "unknown protocol $protocol\n";

# STDERR of the client modules, repeated on STDOUT.
my $stderr = '';
open( my $real_stderr, '>&', \*STDERR ) or die;
close STDERR;
open( STDERR, '>', \$stderr ) or die;
END {
    print "stderr: $_\n" for grep { length } split /\n/, $stderr;
}

sub hex_of { unpack 'H*', $_[0] }

sub new_session { Lemonldap::NG::Common::Session->new( { %options, @_ } ) }

sub create {
    my ($uid) = @_;
    my $s = new_session( kind => 'SSO', info => { attributes($uid) } );
    return $s->error ? ( undef, $s->error ) : ( $s->id, undef );
}

sub read_session {
    my ($id) = @_;
    my $s = new_session( id => $id );
    return $s->error ? ( undef, $s->error ) : ( $s->data, undef );
}

sub show_error { my $e = shift; $e =~ s/\s+/ /g; print "error=$e\n" }

my $failed = 0;
sub check {
    my ( $ok, $what ) = @_;
    print( ( $ok ? 'ok' : 'FAIL' ) . " $what\n" );
    $failed++ unless $ok;
}

if ( $command eq 'create' ) {
    my ( $id, $err ) = create( $args[0] );
    defined $id ? print "id=$id\n" : show_error($err);
}
elsif ( $command eq 'read' ) {
    my ( $data, $err ) = read_session( $args[0] );
    if ($data) {
        print "attr $_ " . hex_of( $data->{$_} ) . "\n"
          for grep { !ref $data->{$_} } sort keys %$data;
    }
    else { show_error($err) }
}
elsif ( $command eq 'update' ) {
    my ( $id, @pairs ) = @args;
    my $s = new_session( id => $id );
    if ( $s->error ) { show_error( $s->error ) }
    else {
        my %set = map { /^([^=]+)=(.*)$/s ? ( $1 => $2 ) : ( $_ => undef ) } @pairs;
        print "updated=" . $s->update( \%set ) . "\n";
    }
}
elsif ( $command eq 'delete' ) {
    my $s = new_session( id => $args[0] );
    if   ( $s->error ) { show_error( $s->error ) }
    else               { print "removed=" . ( $s->remove ? 1 : 0 ) . "\n" }
}
elsif ( $command eq 'crud' ) {
    my %want = attributes( $args[0] );
    my ( $id, $err ) = create( $args[0] );
    check( defined $id, "create (" . ( $err // '' ) . ")" );
    exit 1 unless defined $id;
    check( $id =~ /^[0-9a-f]{64}$/ || $protocol eq 'soap', "REST id is 64 hex digits ($id)" );
    print "id=$id\n";

    my ( $data, $rerr ) = read_session($id);
    check( $data, "read (" . ( $rerr // '' ) . ")" );
    exit 1 unless $data;
    check( defined $data->{$_} && $data->{$_} eq $want{$_},
        "attribute $_ comes back byte for byte" )
      for sort keys %want;
    check( ( $data->{_session_kind} // '' ) eq 'SSO', '_session_kind is kept' );
    check( ( $data->{_utime} // '' ) =~ /^\d+$/, '_utime is set' );
    check( ( $data->{_session_id} // '' ) eq $id, '_session_id is the id' );

    my $s = new_session( id => $id );
    check( $s->update( { mail => 'new@example.com', extra => "x\xe9y" } ),
        'update' );
    ( $data, $rerr ) = read_session($id);
    check( $data && $data->{mail} eq 'new@example.com', 'updated field' );
    check( $data && $data->{extra} eq "x\xe9y", 'added Latin-1 field' );
    check( $data && $data->{uid} eq $want{uid}, 'other fields kept' );

    check( new_session( id => $id )->remove, 'remove' );
    ( $data, $rerr ) = read_session($id);
    check( !$data && $rerr =~ /unexistant session/, 'gone after remove' );
    print $failed ? "FAILED $failed\n" : "PASS\n";
    exit( $failed ? 1 : 0 );
}
elsif ( $command eq 'search' or $command eq 'all' ) {
    die "search and all are REST operations\n" unless $protocol eq 'rest';
    my $class = 'Lemonldap::NG::Common::Apache::Session::REST';
    my $res =
      $command eq 'search'
      ? $class->searchOn( $options{storageModuleOptions}, @args )
      : $class->get_key_from_all_sessions( $options{storageModuleOptions} );
    if ( ref $res eq 'HASH' ) {
        for my $id ( sort keys %$res ) {
            my $uid = ref $res->{$id} eq 'HASH' ? $res->{$id}{uid} // '' : '';
            print "found $id $uid\n";
        }
        print "count=" . scalar( keys %$res ) . "\n";
    }
    else { print "error=no answer\n" }
}
else { die "unknown command $command\n" }
