#!/bin/sh
# Installs the Debian packages the host build and tests need, when missing.
# As root it runs apt-get; otherwise through sudo if available; else it
# prints the one command that does it and fails.
# postfix (smtp-source, and a private instance the TLS tests start on a high
# port) and msmtp are real counterparts of the integration tests; so is
# dovecot-lmtpd (a private Dovecot LMTP next hop, peers.py).
# python3-pytest-xdist runs the integration suite in parallel (TEST_JOBS).
# faketime (libfaketime) runs the daemon's clock faster for the tests of
# the next hop's 5- and 10-minute reply deadlines (test_relay_misbehave.py).
PKGS="gcc make libc6-dev libinih-dev libmbedtls-dev python3 python3-pytest python3-pytest-xdist swaks openssl valgrind postfix msmtp dovecot-lmtpd faketime"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing:$missing" >&2
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
	echo "deps: run as root: apt-get update && apt-get install -y$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# The system's Postfix stays unconfigured ("No configuration": no main.cf,
# so nothing starts); the tests run private instances with their own.
case "$missing" in *postfix*)
	echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections ;;
esac
# The package lists may be missing or stale on a fresh machine.
$SUDO apt-get update -qq || true
# Nor does the system's Dovecot: no service starts during the install
# (policy-rc.d 101), unless the machine already has its own policy.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e $POLICY ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee $POLICY >/dev/null && $SUDO chmod 755 $POLICY
	trap '$SUDO rm -f $POLICY' EXIT
fi
$SUDO apt-get install -y -qq $missing >/dev/null || {
	echo "deps: apt-get install failed; run: apt-get update && apt-get install -y$missing" >&2
	exit 1
}
