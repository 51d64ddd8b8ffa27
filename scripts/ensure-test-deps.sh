#!/usr/bin/env bash
# The tests talk to real peers: swaks, and Postfix's smtp-sink/smtp-source
# (Debian packages swaks and postfix), and use openssl for test certificates;
# the reader is tested in Debian's Chromium (driven by playwright-core); the
# cluster drivers against private PostgreSQL and Redis servers that the tests
# start themselves (Debian packages postgresql and redis-server: only their
# binaries are used, on ports of their own).
# Installs whichever is missing when run as root on Debian; otherwise says what to install.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
need=()
command -v swaks >/dev/null || need+=(swaks)
# swaks speaks STARTTLS only with Net::SSLeay (a recommendation, not a dependency, of swaks)
perl -MNet::SSLeay -MIO::Socket::SSL -e1 2>/dev/null || need+=(libnet-ssleay-perl libio-socket-ssl-perl)
command -v smtp-sink >/dev/null || need+=(postfix)
command -v openssl >/dev/null || need+=(openssl)
[ -x /usr/bin/chromium ] || need+=(chromium)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)  # test/helpers/pg-server.ts: initdb, pg_ctl
[ -x /usr/bin/redis-server ] || need+=(redis-server)  # test/helpers/redis-server.ts: the BullMQ driver's tests
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "test dependencies missing: ${need[*]} (Debian packages); install them, e.g. sudo apt-get install ${need[*]}" >&2
  exit 1
fi
echo "installing test dependencies: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# postfix is used only for its smtp-sink/smtp-source tools and private instances: no system mail setup
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
