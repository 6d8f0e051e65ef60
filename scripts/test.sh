#!/usr/bin/env bash
# Installs the project, then runs the whole test suite. pytest's exit code 5 ("no tests
# collected") is turned into a failure so that an empty run can never pass.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh || exit 1
# tests/test_ray.py starts a Ray head node and runs a study on it, tests/test_storage_proxy.py Optuna's gRPC
# storage proxy: the optional extras `ray` and `grpc`.
.venv/bin/python -m pip install --quiet -e ".[dev,ray,grpc]" || exit 1
# tests/test_browser.py drives Debian's headless Chromium; install it when it is missing and we can
# (root with apt-get), refreshing the package lists only if the first try fails. Without it the
# test skips locally, and fails under CI (env var CI set).
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium for tests/test_browser.py" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends chromium >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; } \
        || echo "warning: could not install chromium; tests/test_browser.py will skip (fail under CI)" >&2
fi
# tests/test_distributed.py needs PostgreSQL on 127.0.0.1:5432: install and start it when missing
# and we can (scripts/postgres.sh says how; quiet when it already answers, one warning line when it
# cannot). Without it those tests skip locally, and fail under CI.
bash scripts/postgres.sh
# tests/test_slurm.py starts a real single-node SLURM cluster: install slurm-wlm and munge when missing and
# we can (scripts/slurm.sh). Without them those tests skip locally, and fail under CI.
bash scripts/slurm.sh
# The code's habits (ruff's rules and formatter, scripts/lint.sh): reported first, and a failure fails the run,
# but the tests run all the same so that one run says everything.
bash scripts/lint.sh
lint=$?
.venv/bin/python -m pytest "$@"
code=$?
if [ "$code" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
if [ "$code" -eq 0 ] && [ "$lint" -ne 0 ]; then
    echo "error: the tests passed but scripts/lint.sh did not" >&2
    exit 1
fi
exit "$code"
