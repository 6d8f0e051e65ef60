"""Fast in-process unit tests for the worker machinery: device slots, budget and claiming, the study lock,
recovery of dead workers' trials, and the worker's small helpers. No subprocess training, no MLflow."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from orchestrator.execution.coordination import DONE, WAIT, claim_trial, count_budget, study_lock
from orchestrator.execution.worker import Heartbeat, heartbeat_enabled, resident_mb
from orchestrator.records import CRASHES_ATTR, LINEAGE_ATTR, REASON_ATTR, RETRY_OF_ATTR, RETRY_REASON_ATTR, WORKER_ATTR
from orchestrator.study.storage import open_storage
from orchestrator.training.devices import DeviceError, Slot, plan_slots
from orchestrator.trial.recovery import died_here, enqueue_retry, fail_and_retry, recover_trials, worker_identity

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --------------------------------------------------------------------------------------------------------------
# devices.plan_slots and Slot.environment


def test_cpu_default_is_one_worker_with_all_cores() -> None:
    slots = plan_slots("auto", None, 1, None, gpu_count=0, cpu_count=12)
    assert slots == [Slot("cpu0", None, 12)]


def test_cpu_workers_split_the_cores() -> None:
    slots = plan_slots("cpu", 4, 1, None, gpu_count=0, cpu_count=16)
    assert [s.name for s in slots] == ["cpu0", "cpu1", "cpu2", "cpu3"]
    assert all(s.gpu is None and s.threads == 4 for s in slots)


def test_cpu_workers_never_get_fewer_than_one_thread() -> None:
    slots = plan_slots("cpu", 8, 1, None, gpu_count=0, cpu_count=3)
    assert len(slots) == 8
    assert all(s.threads == 1 for s in slots)


def test_explicit_threads_override_the_share() -> None:
    slots = plan_slots("cpu", 4, 1, 7, gpu_count=0, cpu_count=16)
    assert [s.threads for s in slots] == [7, 7, 7, 7]
    gpu_slots = plan_slots("auto", None, 1, 3, gpu_count=2, cpu_count=16)
    assert [s.threads for s in gpu_slots] == [3, 3]


def test_devices_cpu_ignores_present_gpus() -> None:
    slots = plan_slots("cpu", 2, 1, None, gpu_count=4, cpu_count=8)
    assert [s.name for s in slots] == ["cpu0", "cpu1"]
    assert all(s.gpu is None for s in slots)


def test_auto_with_gpus_pins_one_slot_per_gpu() -> None:
    slots = plan_slots("auto", None, 1, None, gpu_count=2, cpu_count=16)
    assert [(s.name, s.gpu) for s in slots] == [("gpu0", 0), ("gpu1", 1)]
    assert all(s.threads == 8 for s in slots)


def test_trials_per_device_gives_several_distinct_slots_per_gpu() -> None:
    slots = plan_slots("auto", None, 3, None, gpu_count=2, cpu_count=12)
    assert len(slots) == 6
    assert [s.gpu for s in slots] == [0, 0, 0, 1, 1, 1]
    names = [s.name for s in slots]
    assert len(set(names)) == 6, names
    assert all(name.startswith(f"gpu{s.gpu}") for name, s in zip(names, slots))
    assert all(s.threads == 2 for s in slots)


def test_explicit_gpu_list() -> None:
    slots = plan_slots([0, 2], None, 1, None, gpu_count=4, cpu_count=8)
    assert [(s.name, s.gpu) for s in slots] == [("gpu0", 0), ("gpu2", 2)]


def test_missing_gpu_raises_with_index_and_visible_count() -> None:
    with pytest.raises(DeviceError) as info:
        plan_slots([0, 3], None, 1, None, gpu_count=2, cpu_count=8)
    message = str(info.value)
    assert "3" in message and "2 visible" in message, message
    assert "GPU 0" not in message  # only the missing one is named


def test_missing_gpu_on_machine_without_gpus() -> None:
    with pytest.raises(DeviceError, match=r"GPU 1 .*0 visible"):
        plan_slots([1], None, 1, None, gpu_count=0, cpu_count=8)


@pytest.mark.parametrize("workers", [1, 3, 5])
def test_workers_contradicting_gpu_slots_raises(workers: int) -> None:
    with pytest.raises(DeviceError, match="--workers"):
        plan_slots("auto", workers, 2, None, gpu_count=2, cpu_count=8)


def test_workers_matching_gpu_slots_is_accepted() -> None:
    assert len(plan_slots("auto", 4, 2, None, gpu_count=2, cpu_count=8)) == 4


@pytest.mark.parametrize("devices", [[-1], [0, 0]], ids=["negative", "repeated"])
def test_negative_or_repeated_gpu_indices_are_refused(devices) -> None:
    """`automl run --devices -1` or `0,0` (the study file is validated elsewhere) must not reach a worker."""
    with pytest.raises(DeviceError, match="distinct GPU indices >= 0"):
        plan_slots(devices, None, 1, None, gpu_count=2, cpu_count=8)


@pytest.mark.parametrize("workers, per_device, threads", [(-2, 1, None), (0, 1, None), (None, 0, None), (None, 1, 0)])
def test_counts_below_one_are_refused(workers, per_device, threads) -> None:
    with pytest.raises(DeviceError, match="must be at least 1"):
        plan_slots("cpu", workers, per_device, threads, gpu_count=0, cpu_count=8)


def test_slot_environment() -> None:
    gpu = Slot("gpu1", 1, 4).environment()
    assert gpu["CUDA_VISIBLE_DEVICES"] == "1"
    assert gpu["OMP_NUM_THREADS"] == "4" and gpu["MKL_NUM_THREADS"] == "4"
    gpu0 = Slot("gpu0", 0, 2).environment()
    assert gpu0["CUDA_VISIBLE_DEVICES"] == "0"  # GPU 0 is not mistaken for "no GPU"
    cpu = Slot("cpu0", None, 6).environment()
    assert cpu["CUDA_VISIBLE_DEVICES"] == ""
    assert cpu["OMP_NUM_THREADS"] == "6"


# --------------------------------------------------------------------------------------------------------------
# coordination: budget, claiming, the study lock


def _study() -> optuna.Study:
    return optuna.create_study()


def _complete(study: optuna.Study, value: float = 1.0) -> int:
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    study.tell(trial, value)
    return trial.number


def _finish(study: optuna.Study, state: TrialState) -> int:
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    study.tell(trial, state=state)
    return trial.number


def test_count_budget_counts_complete_pruned_and_failed() -> None:
    study = _study()
    _complete(study)
    _finish(study, TrialState.PRUNED)
    _finish(study, TrialState.FAIL)
    study.ask()  # running
    study.ask()  # running
    study.enqueue_trial({"x": 0.5})  # waiting
    count = count_budget(study, 10)
    assert (count.finished, count.running, count.waiting) == (3, 2, 1)
    assert count.target == 10 and not count.done
    assert count.open_slots == 10 - 3 - 2 - 1


def test_count_budget_skips_failed_trial_that_has_a_retry() -> None:
    study = _study()
    _complete(study)
    failed = _finish(study, TrialState.FAIL)
    study.enqueue_trial({"x": 0.5}, user_attrs={RETRY_OF_ATTR: failed})
    count = count_budget(study, 2)
    assert count.finished == 1  # the failed one will be repeated, it does not use up the budget
    assert count.waiting == 1
    # once the retry runs and completes, the budget is met
    retry = study.ask()
    assert retry.user_attrs[RETRY_OF_ATTR] == failed
    retry.suggest_float("x", 0.0, 1.0)
    study.tell(retry, 2.0)
    assert count_budget(study, 2).finished == 2
    assert count_budget(study, 2).done


def test_claim_trial_returns_new_trial_while_slots_open() -> None:
    study = _study()
    _complete(study)
    claimed = claim_trial(study, 3)
    assert isinstance(claimed, optuna.Trial)
    assert study.trials[claimed.number].state == TrialState.RUNNING
    assert count_budget(study, 3).running == 1


def test_claim_trial_takes_waiting_trial_first_even_when_budget_taken() -> None:
    study = _study()
    study.ask()  # running, takes the only open slot left
    failed = _finish(study, TrialState.FAIL)
    study.enqueue_trial({"x": 0.25}, user_attrs={RETRY_OF_ATTR: failed})
    waiting_number = study.trials[-1].number
    count = count_budget(study, 2)
    assert count.open_slots == 0 and count.waiting == 1
    claimed = claim_trial(study, 2)
    assert isinstance(claimed, optuna.Trial)
    assert claimed.number == waiting_number
    assert claimed.user_attrs[RETRY_OF_ATTR] == failed
    assert claimed.suggest_float("x", 0.0, 1.0) == 0.25


def test_claim_trial_waits_while_running_trials_take_the_budget() -> None:
    study = _study()
    _complete(study)
    study.ask()
    study.ask()
    assert claim_trial(study, 3) == WAIT
    assert len(study.trials) == 3  # nothing new was asked


def test_claim_trial_done_when_budget_met() -> None:
    study = _study()
    _complete(study)
    _finish(study, TrialState.PRUNED)
    assert claim_trial(study, 2) == DONE
    assert claim_trial(study, 1) == DONE
    assert len(study.trials) == 2


def test_study_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    url = f"journal:{tmp_path / 'optuna.journal'}"
    first_holds, release_first, second_holds = threading.Event(), threading.Event(), threading.Event()
    order: list[str] = []
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with study_lock(url, "s"):
                order.append("first in")
                first_holds.set()
                release_first.wait(10)
                order.append("first out")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            first_holds.set()

    def second() -> None:
        try:
            with study_lock(url, "s"):
                order.append("second in")
                second_holds.set()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    one = threading.Thread(target=first, daemon=True)
    one.start()
    assert first_holds.wait(5)
    two = threading.Thread(target=second, daemon=True)
    two.start()
    try:
        assert not second_holds.wait(0.5), "a second holder got the lock while the first held it"
    finally:
        release_first.set()
    assert second_holds.wait(5), "the second holder never got the lock after release"
    one.join(5)
    two.join(5)
    assert not errors, errors
    assert order == ["first in", "first out", "second in"]
    assert (tmp_path / "optuna.journal.automl-lock").exists()


def test_study_lock_is_a_noop_without_file_or_server_storage() -> None:
    # no file storage: nothing to lock, and nesting must not deadlock
    with study_lock("memory", "s"):
        with study_lock("memory", "s"):
            entered = True
    assert entered


# --------------------------------------------------------------------------------------------------------------
# recovery


def test_worker_identity_describes_this_process() -> None:
    identity = worker_identity("w7")
    assert identity["id"] == "w7"
    assert identity["pid"] == os.getpid()
    assert identity["host"] == socket.gethostname()
    assert isinstance(identity["start"], str) and identity["start"].isdigit()


def test_died_here_false_for_live_process() -> None:
    assert died_here(worker_identity("me")) is False


def test_died_here_true_for_a_pid_that_is_gone() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    identity = dict(worker_identity("gone"), pid=child.pid)
    assert died_here(identity) is True


def test_died_here_false_on_another_host() -> None:
    identity = dict(worker_identity("remote"), host=socket.gethostname() + "-elsewhere")
    assert died_here(identity) is False


def test_died_here_true_when_pid_reused() -> None:
    identity = worker_identity("old")
    identity["start"] = str(int(identity["start"]) + 1)
    assert died_here(identity) is True


def test_died_here_false_without_pid() -> None:
    assert died_here({"id": "x", "host": socket.gethostname()}) is False


def _failed_frozen(study: optuna.Study) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    trial.suggest_int("n", 1, 10)
    study.tell(trial, state=TrialState.FAIL)
    return study.trials[trial.number]


def test_enqueue_retry_enqueues_same_params_once() -> None:
    study = _study()
    original = _failed_frozen(study)
    assert enqueue_retry(study, original, "boom") is True
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1
    assert waiting[0].user_attrs == {
        RETRY_OF_ATTR: original.number,
        RETRY_REASON_ATTR: "boom",
        LINEAGE_ATTR: original.number,
        CRASHES_ATTR: 1,
    }
    retry = study.ask()
    assert retry.number == waiting[0].number
    assert retry.suggest_float("x", 0.0, 1.0) == original.params["x"]
    assert retry.suggest_int("n", 1, 10) == original.params["n"]
    study.tell(retry, state=TrialState.FAIL)
    # the retry itself crashed: it is not retried again
    assert enqueue_retry(study, study.trials[retry.number], "boom again") is False
    assert not study.get_trials(states=(TrialState.WAITING,))
    # but an interrupted attempt always is, in the same lineage (its seed and its checkpoint)
    assert enqueue_retry(study, study.trials[retry.number], "interrupted", crashed=False) is True
    again = study.get_trials(states=(TrialState.WAITING,))[0]
    assert again.user_attrs[LINEAGE_ATTR] == original.number and again.user_attrs[CRASHES_ATTR] == 1


def test_fail_and_retry_marks_fail_and_enqueues_once() -> None:
    study = _study()
    trial = study.ask()
    value = trial.suggest_float("x", 0.0, 1.0)
    assert fail_and_retry(study, trial.number, "worker died", None, None) is True
    frozen = study.trials[trial.number]
    assert frozen.state == TrialState.FAIL
    assert frozen.user_attrs[REASON_ATTR] == "worker died"
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1
    assert waiting[0].user_attrs[RETRY_OF_ATTR] == trial.number
    assert waiting[0].user_attrs[RETRY_REASON_ATTR] == "worker died"
    assert study.ask().suggest_float("x", 0.0, 1.0) == value
    # a second call finds the trial no longer running
    assert fail_and_retry(study, trial.number, "worker died", None, None) is False
    assert len(study.trials) == 2  # no second retry


def test_fail_and_retry_false_for_unknown_or_finished_trial() -> None:
    study = _study()
    done = _complete(study)
    assert fail_and_retry(study, done, "x", None, None) is False
    assert fail_and_retry(study, 99, "x", None, None) is False
    assert study.trials[done].state == TrialState.COMPLETE
    assert len(study.trials) == 1


def test_recover_trials_with_worker_id_selects_only_that_worker() -> None:
    study = _study()
    host = socket.gethostname()
    mine = study.ask()
    mine.set_user_attr(WORKER_ATTR, {"id": "w1", "host": host, "pid": os.getpid(), "start": "1"})
    other = study.ask()
    other.set_user_attr(WORKER_ATTR, {"id": "w2", "host": host, "pid": os.getpid(), "start": "1"})
    anonymous = study.ask()
    assert recover_trials(study, None, None, worker_id="w1") == [mine.number]
    states = {t.number: t.state for t in study.trials}
    assert states[mine.number] == TrialState.FAIL
    assert states[other.number] == TrialState.RUNNING
    assert states[anonymous.number] == TrialState.RUNNING
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs[RETRY_OF_ATTR] for t in waiting] == [mine.number]
    assert "w1" in study.trials[mine.number].user_attrs[REASON_ATTR]


def test_recover_trials_without_worker_id_takes_only_dead_local_workers() -> None:
    study = _study()
    alive = study.ask()
    alive.set_user_attr(WORKER_ATTR, worker_identity("alive"))
    dead = study.ask()
    dead.set_user_attr(WORKER_ATTR, dict(worker_identity("dead"), start="0"))
    remote = study.ask()
    remote.set_user_attr(WORKER_ATTR, dict(worker_identity("remote"), host="elsewhere.invalid", start="0"))
    assert recover_trials(study, None, None) == [dead.number]
    assert study.trials[alive.number].state == TrialState.RUNNING
    assert study.trials[remote.number].state == TrialState.RUNNING


def test_retry_params_survive_without_suggest() -> None:
    # a trial created with explicit params (as add_trial does) is retried with those params
    study = _study()
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.FAIL, params={"x": 0.75}, distributions={"x": FloatDistribution(0.0, 1.0)}
        )
    )
    assert enqueue_retry(study, study.trials[0], "r") is True
    assert study.ask().suggest_float("x", 0.0, 1.0) == 0.75


# --------------------------------------------------------------------------------------------------------------
# worker helpers


def test_resident_mb_is_positive_and_below_total_memory() -> None:
    total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    rss = resident_mb()
    assert 0 < rss < total_mb


def test_heartbeat_disabled_for_memory_and_journal_studies(tmp_path: Path) -> None:
    assert heartbeat_enabled(optuna.create_study()) is False
    journal = open_storage(f"journal:{tmp_path / 'optuna.journal'}", heartbeat_seconds=30)
    assert heartbeat_enabled(optuna.create_study(storage=journal, study_name="j")) is False


def test_heartbeat_enabled_for_rdb_with_interval(tmp_path: Path) -> None:
    # the positive control for the test above: an RDB storage with an interval does record heartbeats
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'hb.db'}", heartbeat_interval=60)
    assert heartbeat_enabled(optuna.create_study(storage=storage, study_name="r")) is True
    plain = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'plain.db'}")
    assert heartbeat_enabled(optuna.create_study(storage=plain, study_name="p")) is False


class _BeatRecorder:
    def __init__(self) -> None:
        self.beats: list[int] = []
        self.second = threading.Event()

    def record_heartbeat(self, trial_id: int) -> None:
        self.beats.append(trial_id)
        if len(self.beats) == 2:
            self.second.set()
            raise RuntimeError("a missed beat")  # must not stop the thread
        if len(self.beats) >= 3:
            self.second.set()


def test_heartbeat_beats_survives_errors_and_stops() -> None:
    storage = _BeatRecorder()
    study, trial = SimpleNamespace(_storage=storage), SimpleNamespace(_trial_id=42)
    beat = Heartbeat(study, trial, 0.02)  # type: ignore[arg-type]
    try:
        assert storage.beats[:1] == [42]  # the first beat is recorded at once
        assert storage.second.wait(5)
        deadline = threading.Event()
        for _ in range(100):
            if len(storage.beats) >= 3:
                break
            deadline.wait(0.02)
        assert len(storage.beats) >= 3, "the thread stopped after a failed beat"
    finally:
        beat.close()
    assert not beat.thread.is_alive()
    count = len(storage.beats)
    threading.Event().wait(0.1)
    assert len(storage.beats) == count  # no beats after close


@pytest.mark.parametrize(
    "line, expected",
    [
        ("cuda: Optional[str] = None", False),
        ("cuda: Optional[str] = '12.8'", True),
        ('cuda = "13.0"', True),
        ("hip = None", None),
    ],
)
def test_the_gpu_count_reads_whether_torch_is_a_cuda_build_without_importing_it(tmp_path, monkeypatch, line, expected):
    import importlib.util

    from orchestrator.training import devices

    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "version.py").write_text(f"__version__ = '2.13.0'\n{line}\n")
    spec = importlib.util.spec_from_file_location(
        "torch", tmp_path / "torch" / "__init__.py", submodule_search_locations=[str(tmp_path / "torch")]
    )
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    assert devices._torch_cuda_build() is expected


def test_a_cpu_build_of_torch_sees_no_gpu_and_is_not_imported_to_say_so():
    code = (
        "import sys; from orchestrator.training.devices import visible_gpu_count; "
        "print(visible_gpu_count(), 'torch' in sys.modules)"
    )
    import torch

    if torch.version.cuda is not None:
        pytest.skip("a CUDA build of torch: the driver is asked instead")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "False"]
