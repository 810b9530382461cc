# Sourced by .ci scripts that fetch packages of another Debian release
# (.ci/valkey). Committed files name no package host: the archive is the
# one this machine's own apt sources already use for its main suite, so a
# machine behind a local mirror fetches from that mirror.
#
# debian_archive prints "URI SIGNED-BY" for the first enabled `deb` source
# of the machine's base suite (a suite name without a '-', e.g. bookworm,
# not bookworm-updates or bookworm-security) with component main. It reads
# deb822 files (*.sources) and one-line files (sources.list, *.list), and
# fails with a message when none fits. SIGNED-BY is "-" when the source
# names no keyring (apt's trusted keys then apply).

debian_archive() {
    local dir=${APT_SOURCES_DIR:-/etc/apt}
    local found
    found=$(
        {
            for f in "$dir"/sources.list.d/*.sources; do
                [ -f "$f" ] && { cat "$f"; echo; }
            done
        } | awk '
            function flush() {
                if (!done && types ~ /(^| )deb( |$)/ && enabled != "no" && comps ~ /(^| )main( |$)/) {
                    n = split(suites, s, " ")
                    for (i = 1; i <= n; i++) if (s[i] !~ /-/ && s[i] !~ /\//) {
                        split(uris, u, " "); print u[1], (signed == "" ? "-" : signed); done = 1; exit
                    }
                }
                types = uris = suites = comps = signed = enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            {
                key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
                if (key == "types") types = $0
                else if (key == "uris") uris = $0
                else if (key == "suites") suites = $0
                else if (key == "components") comps = $0
                else if (key == "signed-by") signed = $0
                else if (key == "enabled") enabled = tolower($0)
            }
            END { flush() }'
    )
    if [ -z "$found" ]; then
        found=$(
            cat "$dir"/sources.list "$dir"/sources.list.d/*.list 2>/dev/null | awk '
                $1 != "deb" { next }
                {
                    signed = "-"; i = 2
                    if ($2 ~ /^\[/) {
                        for (; i <= NF; i++) {
                            if ($i ~ /signed-by=/) { signed = $i; sub(/.*signed-by=/, "", signed); sub(/\]$/, "", signed) }
                            if ($i ~ /\]$/) { i++; break }
                        }
                    }
                    uri = $i; suite = $(i + 1)
                    for (j = i + 2; j <= NF; j++) if ($j == "main" && suite !~ /-/ && suite !~ /\//) { print uri, signed; exit }
                }'
        )
    fi
    if [ -z "$found" ]; then
        echo "no Debian archive found in $dir/sources.list or $dir/sources.list.d: expected a 'deb' source of the base suite with component main" >&2
        return 1
    fi
    echo "$found"
}
