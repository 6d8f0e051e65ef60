#!/usr/bin/env bash
# Makes sure the SLURM commands and daemons that tests/test_slurm.py starts a single-node cluster with are
# installed: Debian's slurm-wlm (slurmctld, slurmd, sbatch, squeue, scancel, scontrol) and munge.
# Called by scripts/test.sh before pytest; safe to run by hand and any number of times. The tests configure
# and start the cluster themselves (tests/slurm_cluster.py), on 127.0.0.1 with free ports.
#
# Quiet when everything is there; installs as root with apt-get (refreshing the lists only if the first try
# fails); otherwise prints one warning line and exits 1 (the tests then skip, or fail under CI).
set -uo pipefail

have_all() {
    local c
    for c in slurmctld slurmd sbatch squeue scancel scontrol munged munge; do
        command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || return 1
    done
}

have_all && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "warning: SLURM is not installed (installing it needs root and apt-get); tests/test_slurm.py will" \
        "skip (fail under CI)" >&2
    exit 1
fi
echo "installing slurm-wlm and munge for tests/test_slurm.py" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 \
        && apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null 2>&1; } \
    || { echo "warning: apt-get install slurm-wlm munge failed; tests/test_slurm.py will skip (fail under CI)" >&2
         exit 1; }
have_all || { echo "warning: slurm-wlm installed but some of its commands are missing" >&2; exit 1; }
exit 0
