#!/usr/bin/env bash
# Runs the order-service example with kafka-python from the Python clients'
# venv (created on first use): run.sh checker PORT DB | run.sh place BOOTSTRAP DB ORDER_ID [...]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CLIENTS="$HERE/../../clients/python"
# The venv is made (and kept current) by the clients' own script.
bash "$CLIENTS/run.sh" --setup-only
exec "$CLIENTS/.venv/bin/python" "$HERE/order_service.py" "$@"
