#!/usr/bin/env bash
# Run the whole test suite: installs the Python packages and the real SIP
# peers (sipp, baresip) when missing.  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PBX_EXTRAS=test source scripts/setup.sh
apt_install sip-tester baresip-core espeak-ng chromium mosquitto ffmpeg kamailio
exec .venv/bin/python -m pytest "$@"
