#!/usr/bin/env bash
# Print the path of a working Python 3.10 interpreter, or explain how to get one (exit 2).
# pyenv puts a `python3.10` shim on PATH that fails unless 3.10 is the selected version, so
# each candidate is run, not just looked up.
set -u
candidates=("${PY:-}" python3.10)
if command -v pyenv >/dev/null 2>&1; then
  for d in "$(pyenv root)"/versions/3.10*; do candidates+=("$d/bin/python3.10"); done
fi
candidates+=(/usr/local/bin/python3.10 /usr/bin/python3.10)
for c in "${candidates[@]}"; do
  [ -n "$c" ] || continue
  if "$c" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; then
    command -v "$c" 2>/dev/null || echo "$c"
    exit 0
  fi
done
echo "error: no working Python 3.10 found (tried: ${candidates[*]}). paddleopt needs Python 3.10 because Paddle Lite wheels stop at cp310." >&2
echo "fix: install it (e.g. 'pyenv install 3.10' or 'apt-get install python3.10 python3.10-venv') or run 'make PY=/path/to/python3.10'." >&2
exit 2
