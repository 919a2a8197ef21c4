#!/usr/bin/env bash
# Install the PBX and start it on its embedded defaults (SQLite, no broker)
# with the demo extensions 1001-1004 from sip.conf.example.
# Extra arguments go to `pbx serve`, e.g. --bind 0.0.0.0 --sip-port 5070.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
apt_install espeak-ng  # renders the system prompts on first start
exec .venv/bin/pbx serve --config sip.conf.example "$@"
