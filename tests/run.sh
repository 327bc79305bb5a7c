#!/usr/bin/env bash
# The whole test suite, on a fresh Debian/Ubuntu machine with Rust: installs what the tests
# drive (real rsyslog with GnuTLS, syslog-ng unpacked beside it, openssl, the ECS validator's
# PyYAML, the CEF parsers and the OCSF validator), then runs every unit and integration test.
# Run from anywhere: `bash tests/run.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v rsyslogd >/dev/null 2>&1 || [ -x /usr/sbin/rsyslogd ] || need_apt+=(rsyslog)
[ -e /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so ] || [ -n "$(find /usr/lib -name lmnsd_gtls.so 2>/dev/null | head -1)" ] || need_apt+=(rsyslog-gnutls)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v ss >/dev/null 2>&1 || need_apt+=(iproute2)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# A Debian or Ubuntu system Python refuses pip installs (PEP 668) unless told to.
pins=(pyyaml==6.0.2 cefp==0.0.2 pycef==1.11 syslog2cef==0.3.3 ocsf-emitter==0.3.0)
python3 - <<'PY' 2>/dev/null || python3 -m pip install -q "${pins[@]}" || python3 -m pip install -q --break-system-packages "${pins[@]}"
import importlib.metadata, yaml, cefp, pycef, ocsf_emitter  # noqa: F401
assert importlib.metadata.version("ocsf-emitter") == "0.3.0"
PY

if [ ! -d ../shared ]; then
  echo "tests need ../shared beside the checkout (the product's reference material)" >&2
  exit 2
fi

# syslog-ng 3.38, the strict RFC 5424 receiver of tests/it/receivers.rs. Debian's syslog-ng-core
# conflicts with rsyslog as a package, so it is unpacked into a fixed directory instead, once
# (skipped when already there, or when no SYSLOG_NG_ROOT is set and syslog-ng is on PATH).
if [ -n "${SYSLOG_NG_ROOT:-}" ] || ! command -v syslog-ng >/dev/null 2>&1; then
  export SYSLOG_NG_ROOT="${SYSLOG_NG_ROOT:-/opt/syslog-ng-local}"
  if [ ! -x "$SYSLOG_NG_ROOT/usr/sbin/syslog-ng" ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO bash ../shared/receivers/install-syslog-ng-local.sh "$SYSLOG_NG_ROOT"
  fi
fi
# The simulator crate first, so that the run closes on the agent's integration tests.
cargo test -p docspace-sim --all-targets
cargo test -p docspace-siem --all-targets
