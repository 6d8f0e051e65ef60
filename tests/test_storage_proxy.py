"""`automl storage-proxy`: Optuna's gRPC storage proxy in front of PostgreSQL with the study locks beside it, and
workers that reach the study only through it (`storage: grpc://HOST:PORT`). The lock server is tested on its
own too: it serializes holders, and a holder that dies frees its lock."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import uuid

import optuna
import pytest
from conftest import AUTOML, TINY_STUDY, drop_study, free_port
from optuna.trial import TrialState

from orchestrator.execution.lock_server import LockServer, free_port_pair, remote_lock


@pytest.fixture
def lock_server():
    server = LockServer("127.0.0.1", free_port())
    server.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_lock_server_lets_one_holder_in_at_a_time(lock_server):
    inside, overlaps = [], []

    def hold() -> None:
        with remote_lock("127.0.0.1", lock_server, "study"):
            inside.append(1)
            overlaps.append(len(inside))
            time.sleep(0.05)
            inside.pop()

    threads = [threading.Thread(target=hold) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert overlaps == [1] * 6


def test_a_holder_that_dies_frees_its_lock(lock_server):
    dead = socket.create_connection(("127.0.0.1", lock_server))
    dead.sendall(b"LOCK study\n")
    assert dead.makefile("rb").readline() == b"OK\n"
    dead.close()  # the process holding it is gone: no UNLOCK ever comes
    started = time.monotonic()
    with remote_lock("127.0.0.1", lock_server, "study"):
        pass
    assert time.monotonic() - started < 5


def test_other_names_do_not_wait(lock_server):
    with remote_lock("127.0.0.1", lock_server, "a"):
        started = time.monotonic()
        with remote_lock("127.0.0.1", lock_server, "b"):
            pass
        assert time.monotonic() - started < 2


@pytest.fixture
def storage_proxy(postgres):
    port = free_port_pair()
    proc = subprocess.Popen(
        [AUTOML, "storage-proxy", "--port", str(port)],
        env={**os.environ, "AUTOML_STORAGE": postgres},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith(f"serving postgresql://postgres@127.0.0.1:5432/test as storage: grpc://127.0.0.1:{port}"), (
        line + proc.stdout.read()
    )
    yield f"grpc://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


def test_two_workers_through_the_proxy_finish_exactly_the_budget(storage_proxy, postgres, write_study, workdir):
    name = f"proxy-{uuid.uuid4().hex[:8]}"
    write_study(TINY_STUDY.replace("name: tiny", f"name: {name}").replace("trials: 3", "trials: 5"))
    try:
        done = subprocess.run(
            [AUTOML, "run", "study.yaml", "--workers", "2", "--threads", "1", "--storage", storage_proxy],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        study = optuna.load_study(study_name=name, storage=postgres)
        assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 5
        assert {t.user_attrs["worker"]["id"].split("#")[0] for t in study.trials} == {"cpu0", "cpu1"}
    finally:
        drop_study(name, postgres)


def test_an_unreachable_proxy_is_refused_with_exit_2_and_how_to_start_it(write_study, cli):
    path = write_study()
    result = cli("run", str(path), "--storage", f"grpc://127.0.0.1:{free_port()}")
    assert result.code == 2
    assert "cannot reach the gRPC storage proxy at 127.0.0.1:" in result.err
    assert "automl storage-proxy --storage postgresql://" in result.err


def test_the_proxy_serves_only_a_database(cli):
    result = cli("storage-proxy", "--storage", "journal:/tmp/x.journal")
    assert result.code == 2 and "must be a database URL such as postgresql://" in result.err
