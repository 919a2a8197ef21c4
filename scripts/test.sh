#!/usr/bin/env bash
# Run the whole test suite: installs the Python packages and the real SIP
# peers (sipp, baresip) when missing.  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PBX_EXTRAS=test source scripts/setup.sh
apt_install sip-tester baresip-core espeak-ng chromium firefox-esr mosquitto ffmpeg kamailio
# Two workers, a test file each at a time (a file's tests share their PBX
# fixtures); most tests wait on timers and peers, not the CPU.
exec .venv/bin/python -m pytest -n "${PBX_TEST_WORKERS:-2}" --dist loadfile "$@"
