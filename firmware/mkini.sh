#!/bin/sh
# Writes the router's /etc/tarpitd/tarpitd.ini: config/tarpitd.ini with a
# board's sizing (board/<name>.mk) for its RAM class. Used for the .ipk
# (firmware/mkipk.sh) and by the OpenWrt feed package.
#
# usage: mkini.sh SRC_INI MAX_CONNECTIONS TLS_MAX_SESSIONS HARVEST_TABLE_SIZE
set -eu
src=$1 maxconn=$2 sessions=$3 table=$4
for v in "$maxconn" "$sessions" "$table"; do
	case $v in ''|*[!0-9]*) echo "mkini.sh: '$v' is not a number" >&2; exit 2 ;; esac
done

# [server] max_connections and the connector's max_inbound_connections
# follow the board (the connector limit is capped by the table anyway, and
# an equal value keeps `show` honest); [harvest] table_size too, in the
# section the file has, or in one added at the end.
awk -v maxconn="$maxconn" -v table="$table" '
	/^[ \t]*\[/ {
		if (sect == "harvest" && !done) { print "table_size = " table; done = 1 }
		sect = $0; sub(/^[ \t]*\[/, "", sect); sub(/\].*$/, "", sect)
		if (sect == "harvest") seen = 1
		print; next
	}
	sect == "server" && /^[ \t]*max_connections[ \t]*=/ { print "max_connections = " maxconn; next }
	sect ~ /^connector / && /^[ \t]*max_inbound_connections[ \t]*=/ { print "max_inbound_connections = " maxconn; next }
	sect == "harvest" && /^[ \t]*table_size[ \t]*=/ { if (!done) print "table_size = " table; done = 1; next }
	{ print }
	END {
		if (sect == "harvest" && !done) print "table_size = " table
		else if (!seen) printf "\n[harvest]\ntable_size = %s\n", table
	}' "$src"
cat <<EOT

; STARTTLS: uncomment with a certificate and key (paths relative to this
; file). max_sessions is sized for this board's RAM (about 40 KB each).
;[tls]
;certificate = cert.pem
;key = key.pem
;max_sessions = $sessions
EOT
