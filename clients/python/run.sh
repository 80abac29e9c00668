#!/usr/bin/env bash
# Run the kafka-python round-trip test: run.sh BOOTSTRAP TOPIC COUNT
# or one consumer group member:          run.sh group-member BOOTSTRAP TOPIC GROUP [INSTANCE_ID]
# or the transactions test:              run.sh transactions BOOTSTRAP TOPIC COUNT
# or only set the venv up:               run.sh --setup-only
# Creates clients/python/.venv on first use and installs requirements.txt
# into it (again whenever requirements.txt changes).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PYTHON="${PYTHON:-python3}"

script="roundtrip.py"
setup_only=false
if [[ "${1:-}" == "--setup-only" ]]; then
    # Only create (or update) the venv: for other programs that use it.
    setup_only=true
    set -- x x x
elif [[ "${1:-}" == "group-member" ]]; then
    script="group_member.py"
    shift
elif [[ "${1:-}" == "transactions" ]]; then
    script="transactions.py"
    shift
fi
if [[ $# -ne 3 && ! ( "$script" == group_member.py && $# -eq 4 ) ]]; then
    echo "usage: $0 BOOTSTRAP TOPIC COUNT | $0 group-member BOOTSTRAP TOPIC GROUP [INSTANCE_ID] | $0 transactions BOOTSTRAP TOPIC COUNT" >&2
    exit 2
fi

# Several runs may start at once (group members in the tests): one of them
# creates the venv while the others wait.
exec 9>"$HERE/.venv.lock"
flock 9
if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$HERE/requirements.txt"
    echo "$want" >"$stamp"
fi
flock -u 9
exec 9>&-

if $setup_only; then
    exit 0
fi
exec "$VENV/bin/python" "$HERE/$script" "$@"
