"""Can a cluster's nodes share this study? Its Optuna storage, its MLflow store and its checkpoints must be a
server or files in a folder every node sees: a network file system (found in /proc/mounts) or a folder the
launcher's settings declare shared."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from orchestrator.study.storage import storage_file

NETWORK_FILE_SYSTEMS = {
    "nfs",
    "nfs4",
    "lustre",
    "gpfs",
    "beegfs",
    "cephfs",
    "ceph",
    "cifs",
    "smb3",
    "smbfs",
    "glusterfs",
    "fuse.glusterfs",
    "panfs",
    "wekafs",
    "fuse.sshfs",
    "fuse.juicefs",
    "9p",
    "afs",
    "orangefs",
    "pvfs2",
}


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def file_system_type(path: Path, mounts: str | None = None) -> str | None:
    """The type of the file system `path` lies on, from /proc/mounts (the longest mount point above it)."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return None
    target = str(path.resolve())
    best: tuple[int, str] | None = None
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point = _unescape(parts[1]).rstrip("/") or "/"
        if (target == point or target.startswith(point.rstrip("/") + "/")) and (best is None or len(point) > best[0]):
            best = (len(point), parts[2])
    return best[1] if best else None


def is_shared(path: Path, shared: Sequence[Path], mounts: str | None = None) -> bool:
    """Whether every node sees `path`: under a declared shared folder, or on a network file system."""
    resolved = path.expanduser().resolve()
    if any(resolved == folder or folder in resolved.parents for folder in shared):
        return True
    return file_system_type(resolved, mounts) in NETWORK_FILE_SYSTEMS


def tracking_file(uri: str) -> Path | None:
    """The local file or folder behind an MLflow tracking URI (None for a server)."""
    if uri.startswith("sqlite:"):
        return Path(uri.split(":///", 1)[-1])
    if uri == "databricks" or uri.startswith("databricks"):
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and uri[1:3] in (":\\", ":/")):  # a plain path
        return Path(uri)
    return None


def sharing_problems(
    launcher: str,
    storage_url: str,
    tracking_uri: str | None,
    checkpoints: Path | None,
    shared: Sequence[Path],
    settings_key: str,
    mounts: str | None = None,
) -> list[str]:
    """What the cluster's nodes could not share, each with its fix (empty when everything is shareable)."""
    problems = []
    fix = (
        f"add its folder to {settings_key}.shared if every node sees it, or use a server "
        "(storage: postgresql://..., tracking_uri: http://...)"
    )
    path = storage_file(storage_url)
    if path is not None and not is_shared(path, shared, mounts):
        problems.append(f"the Optuna storage {path} is a local file that the {launcher} nodes cannot share: {fix}")
    local = tracking_file(tracking_uri) if tracking_uri else None
    if local is not None and not is_shared(local, shared, mounts):
        problems.append(f"the MLflow store {local} is local to this machine: {fix}")
    if checkpoints is not None and not is_shared(checkpoints, shared, mounts):
        problems.append(
            f"the checkpoint folder {checkpoints} is local to this machine, so a trial requeued on "
            f"another node could not resume: set checkpoints.dir to a folder every node sees, or add "
            f"it to {settings_key}.shared"
        )
    return problems
