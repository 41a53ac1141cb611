#!/usr/bin/perl
# expand-functions.pl: assemble an upgrade script from its parts, writing in
# place of each directive line
#
#   -- @function segment_internal._generate
#   -- @function segment.count(name, text)
#   -- @procedure segment.run_all
#
# the one definition of that function (or procedure) in the install parts:
# its whole CREATE [OR REPLACE] FUNCTION statement, emitted as CREATE OR
# REPLACE, followed by the COMMENT ON / ALTER / GRANT / REVOKE statements on
# the same function that come right after it in its install part. So a
# function's final body is written once, in its install part, and the upgrade
# only names it (docs/architecture.md, "Where to make the common changes").
#
# The argument list is needed only when the name is overloaded among the
# install parts; it lists the types of the identity arguments (no names, no
# defaults, no OUT arguments of a function), spelled as in SQL: int, int4 and
# integer are one type. A directive that matches no definition, or more than
# one, fails: a message naming the directive and its place, exit status 1.
#
# Usage: perl tools/expand-functions.pl INSTALL_DIR PART... > upgrade.sql
#        perl tools/expand-functions.pl --list INSTALL_DIR   (every definition)
#        perl tools/expand-functions.pl --copies INSTALL_DIR PART...
# --copies lists the CREATE FUNCTION statements in the parts (symbolic links
# to install parts left out) of a function some install part defines: copies
# that should be directives (exit status 1 when there is one).
# Only core Perl (strict, warnings): the build runs it on a fresh Debian with
# what `make deps` installs (perl-base is essential; postgresql-common depends
# on perl). Not Python: the build must not need it.
use strict;
use warnings;

my $mode = 'expand';
$mode = substr(shift @ARGV, 2) if @ARGV && $ARGV[0] =~ /^--(?:list|copies)$/;
my $install_dir = shift @ARGV;
die "usage: $0 [--list|--copies] INSTALL_DIR [PART...]\n" unless defined $install_dir && -d $install_dir;

# --- SQL text: statements, identifiers, argument types ---------------------

sub read_file {
    my ($path) = @_;
    open(my $fh, '<', $path) or die "$0: cannot read $path: $!\n";
    local $/;
    my $text = <$fh>;
    close $fh;
    return $text;
}

# The statements of a script: [start offset, end offset after the ';'].
# start is the first character that is not blank or comment. Strings,
# quoted identifiers, comments and dollar quotes are skipped as a whole.
sub statements {
    my ($text) = @_;
    my @stmts;
    my $start;
    pos($text) = 0;
    while (pos($text) < length $text) {
        my $at = pos($text);
        if ($text =~ /\G(?:\s+|--[^\n]*)/gc) {
            next;
        }
        if ($text =~ m{\G/\*}gc) {
            # nested block comments, as PostgreSQL reads them
            my $depth = 1;
            while ($depth > 0) {
                if ($text =~ m{\G/\*}gc) { $depth++ }
                elsif ($text =~ m{\G\*/}gc) { $depth-- }
                elsif ($text =~ m{\G[^/*]+|\G.}gcs) { }
                else { die "$0: unterminated comment\n" }
            }
            next;
        }
        $start = $at unless defined $start;
        if ($text =~ /\G;/gc) {
            push @stmts, [$start, pos($text)];
            undef $start;
        } elsif ($text =~ /\G(?<![\w\$])[eE]'(?:[^'\\]|\\.|'')*'/gcs
              || $text =~ /\G'(?:[^']|'')*'/gc
              || $text =~ /\G"(?:[^"]|"")*"/gc
              || $text =~ /\G\$((?:[A-Za-z_\x80-\xff][\w\x80-\xff]*)?)\$.*?\$\1\$/gcs
              || $text =~ /\G[\w\x80-\xff]+/gc
              || $text =~ /\G./gcs) {
            # a token: nothing to do
        }
    }
    push @stmts, [$start, length $text] if defined $start;
    return @stmts;
}

# An identifier as PostgreSQL folds it: unquoted lower-cased, quoted as is.
sub fold_ident {
    my ($id) = @_;
    return $id =~ /^"(.*)"$/s ? $1 =~ s/""/"/gr : lc $id;
}

my $IDENT = qr/(?:"(?:[^"]|"")+"|[A-Za-z_\x80-\xff][\w\$\x80-\xff]*)/;
my $QNAME = qr/$IDENT(?:\s*\.\s*$IDENT)?/;

sub fold_qname {
    my ($q) = @_;
    my @parts = $q =~ /($IDENT)/g;
    return join '.', map { fold_ident($_) } @parts;
}

# Split the text between a function's parentheses at its top-level commas.
sub split_args {
    my ($s) = @_;
    my (@args, $cur, $depth);
    $cur = '';
    $depth = 0;
    pos($s) = 0;
    while (pos($s) < length $s) {
        if ($s =~ /\G('(?:[^']|'')*'|"(?:[^"]|"")*")/gc) { $cur .= $1 }
        elsif ($s =~ /\G([(\[])/gc) { $depth++; $cur .= $1 }
        elsif ($s =~ /\G([)\]])/gc) { $depth--; $cur .= $1 }
        elsif ($s =~ /\G,/gc) {
            if ($depth == 0) { push @args, $cur; $cur = '' } else { $cur .= ',' }
        }
        elsif ($s =~ /\G([^'"()\[\],]+)/gc) { $cur .= $1 }
        else { $s =~ /\G(.)/gcs; $cur .= $1 }
    }
    push @args, $cur if $cur =~ /\S/;
    s/^\s+|\s+$//g for @args;
    return @args;
}

# Type names of more than one word, and the aliases PostgreSQL gives types.
my @MULTIWORD = ('double precision', 'character varying', 'bit varying',
    'timestamp with time zone', 'timestamp without time zone',
    'time with time zone', 'time without time zone');
my %ALIAS = (
    int => 'integer', int4 => 'integer', int2 => 'smallint', int8 => 'bigint',
    bool => 'boolean', float8 => 'double precision', float => 'double precision',
    float4 => 'real', decimal => 'numeric', varchar => 'character varying',
    timestamptz => 'timestamp with time zone', timestamp => 'timestamp without time zone',
    timetz => 'time with time zone', time => 'time without time zone',
    varbit => 'bit varying', char => 'character', bpchar => 'character',
);

# A type as written ("int4[]", "pg_catalog.text", "numeric(10,2)") in one spelling.
sub normal_type {
    my ($t) = @_;
    $t =~ s/\s+/ /g;
    $t =~ s/^\s+|\s+$//g;
    my $dims = '';
    $dims .= '[]' while $t =~ s/\s*\[\s*\d*\s*\]\s*$//;
    $t =~ s/\s*\(.*\)\s*$//s;            # type modifiers do not make a signature
    $t = fold_qname($t) unless $t =~ / /;
    $t = lc $t if $t =~ / /;
    $t =~ s/^pg_catalog\.//;
    $t = $ALIAS{$t} // $t;
    return $t . $dims;
}

# One argument of a CREATE FUNCTION: (mode, type) with the name and default gone.
sub arg_type {
    my ($a) = @_;
    $a =~ s/\s+(?:DEFAULT\b|=).*$//is;
    my $mode = 'in';
    $mode = lc $1 if $a =~ s/^(IN\s+OUT|INOUT|IN|OUT|VARIADIC)\s+//i;
    $mode = 'inout' if $mode =~ /^in\s+out$/;
    for my $mw (@MULTIWORD) {
        return ($mode, normal_type($1)) if $a =~ /^(\Q$mw\E\b.*)$/is;         # type only
        return ($mode, normal_type($1)) if $a =~ /^$IDENT\s+(\Q$mw\E\b.*)$/is;  # name type
    }
    return ($mode, normal_type($1)) if $a =~ /^$IDENT\s+($QNAME\s*(?:\(.*?\))?\s*(?:\[\s*\d*\s*\]\s*)*)$/s;
    return ($mode, normal_type($a));
}

# The identity signature: the types of the arguments that select the function
# (a function's OUT arguments do not; a procedure's do, since PostgreSQL 14).
sub identity {
    my ($kind, $argtext) = @_;
    my @types;
    for my $a (split_args($argtext)) {
        my ($mode, $type) = arg_type($a);
        next if $mode eq 'out' && $kind eq 'function';
        push @types, $type;
    }
    return join ', ', @types;
}

# The text between the parenthesis at $pos and the one that closes it.
sub paren_text {
    my ($text, $pos) = @_;
    my $depth = 0;
    pos($text) = $pos;
    my $begin = $pos + 1;
    while (pos($text) < length $text) {
        if ($text =~ /\G(?:'(?:[^']|'')*'|"(?:[^"]|"")*")/gc) { next }
        if ($text =~ /\G\(/gc) { $depth++; next }
        if ($text =~ /\G\)/gc) {
            $depth--;
            return substr($text, $begin, pos($text) - 1 - $begin) if $depth == 0;
            next;
        }
        $text =~ /\G[^'"()]+|\G./gcs;
    }
    return undef;
}

# --- the definitions in the install parts -----------------------------------

# The CREATE FUNCTION and CREATE PROCEDURE statements of a script, each with
# the statements on the same function right after it:
# { kind, name, sig, text (as CREATE OR REPLACE), line }.
sub definitions {
    my ($file) = @_;
    my $text = read_file($file);
    my @found;
    my @stmts = statements($text);
    for (my $i = 0; $i < @stmts; $i++) {
        my ($s, $e) = @{$stmts[$i]};
        my $stmt = substr($text, $s, $e - $s);
        next unless $stmt =~ /^CREATE\s+(?:OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE)\s+($QNAME)\s*(?=\()/i;
        my ($kind, $name) = (lc $1, fold_qname($2));
        my $args = paren_text($stmt, $+[0]);
        die "$0: $file: cannot read the arguments of $name\n" unless defined $args;
        my $out = $stmt;
        $out =~ s/^CREATE\s+(?:OR\s+REPLACE\s+)?/CREATE OR REPLACE /i;
        # the statements on this function right after it
        my $j = $i + 1;
        while ($j < @stmts) {
            my ($s2, $e2) = @{$stmts[$j]};
            my $next = substr($text, $s2, $e2 - $s2);
            last unless $next =~ /^(?:COMMENT\s+ON|ALTER|(?:GRANT|REVOKE)\b[^;]*?\bON)\s+(?:FUNCTION|PROCEDURE)\s+($QNAME)\s*\(/i
                && fold_qname($1) eq $name;
            $out .= "\n" . $next;
            $j++;
        }
        my $line = 1 + (substr($text, 0, $s) =~ tr/\n//);
        push @found, { kind => $kind, name => $name, sig => identity($kind, $args),
                       text => $out, file => $file, line => $line };
        $i = $j - 1;
    }
    return @found;
}

my @defs = map { definitions($_) } sort glob("$install_dir/*.sql");

if ($mode eq 'list') {
    printf "%s %s(%s) %s:%d\n", $_->{kind}, $_->{name}, $_->{sig}, $_->{file}, $_->{line} for @defs;
    exit 0;
}

if ($mode eq 'copies') {
    my $copies = 0;
    for my $part (grep { !-l $_ } @ARGV) {
        for my $c (definitions($part)) {
            my ($d) = grep { $_->{kind} eq $c->{kind} && $_->{name} eq $c->{name}
                             && $_->{sig} eq $c->{sig} } @defs;
            next unless $d;
            printf "%s:%d: %s %s(%s) is defined in %s:%d: write -- \@%s %s\n", $part, $c->{line},
                $c->{kind}, $c->{name}, $c->{sig}, $d->{file}, $d->{line}, $c->{kind}, $c->{name};
            $copies++;
        }
    }
    exit($copies ? 1 : 0);
}

# --- the parts, directives expanded -------------------------------------------

my $failed = 0;
# A directive belongs in an upgrade part: in an install part (some are linked
# into the upgrade) it would be a comment in the install script.
for my $file (sort glob("$install_dir/*.sql")) {
    my $lineno = 0;
    for my $line (split /^/m, read_file($file)) {
        $lineno++;
        next unless $line =~ /^--\s*\@(?:function|procedure)\b/;
        chomp $line;
        print STDERR "$0: $file:$lineno: $line: a directive in an install part\n";
        $failed = 1;
    }
}
for my $part (@ARGV) {
    my $text = read_file($part);
    my $lineno = 0;
    for my $line (split /^/m, $text) {
        $lineno++;
        unless ($line =~ /^--\s*\@(function|procedure)\b(.*)$/) {
            print $line;
            next;
        }
        my ($kind, $rest) = ($1, $2);
        my $where = "$part:$lineno: -- \@$kind$rest";
        $rest =~ s/^\s+|\s+$//g;
        my ($name, $sig);
        if ($rest =~ /^($QNAME)\s*(?:\((.*)\))?$/s) {
            ($name, $sig) = (fold_qname($1), $2);
        } else {
            print STDERR "$0: $where: expected a schema-qualified name, optionally (argument types)\n";
            $failed = 1;
            next;
        }
        $sig = join ', ', map { normal_type($_) } split_args($sig) if defined $sig;
        my @found = grep { $_->{kind} eq $kind && $_->{name} eq $name
                           && (!defined $sig || $_->{sig} eq $sig) } @defs;
        if (@found != 1) {
            my @named = grep { $_->{kind} eq $kind && $_->{name} eq $name } @defs;
            my $what = @found ? scalar(@found) . " definitions" : "no definition";
            print STDERR "$0: $where: $what in $install_dir/*.sql"
                . (@named ? "; there are:\n" : "\n");
            print STDERR "    $_->{name}($_->{sig}) $_->{file}:$_->{line}\n" for @named;
            $failed = 1;
            next;
        }
        my $d = $found[0];
        (my $from = $d->{file}) =~ s{^.*/}{};
        chomp $line;
        print "$line  (from $from)\n", $d->{text}, "\n";
    }
}
exit $failed;
