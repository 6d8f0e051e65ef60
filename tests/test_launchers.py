"""The `launcher:` study key, the check that a cluster's nodes can share a study, and the SLURM batch script
(no scheduler needed: tests/test_slurm.py runs them against a real one)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.execution.launchers.sharing import file_system_type, is_shared, sharing_problems, tracking_file
from orchestrator.execution.launchers.slurm import batch_script
from orchestrator.study.launch_settings import RaySettings, SlurmSettings, check_launcher

MOUNTS = """/dev/sda1 / ext4 rw 0 0
server:/export/home /home nfs4 rw 0 0
/dev/sdb1 /home/me/local ext4 rw 0 0
lustre@tcp:/scratch /scratch lustre rw 0 0
"""


def test_no_launcher_key_means_this_machine(tmp_path):
    launcher, problems = check_launcher(None, tmp_path)
    assert launcher.name == "local" and launcher.settings() is None and not problems


def test_slurm_settings_are_read_with_their_defaults(tmp_path):
    launcher, problems = check_launcher(
        {
            "slurm": {
                "tasks": 8,
                "partition": "gpu",
                "gpus_per_task": 1,
                "time": "02:00:00",
                "mem": "16G",
                "sbatch": ["--qos=high"],
                "shared": ["data", "/scratch/me"],
            }
        },
        tmp_path,
    )
    assert not problems
    assert launcher.name == "slurm" and launcher.settings() == SlurmSettings(
        tasks=8,
        partition="gpu",
        gpus_per_task=1,
        time="02:00:00",
        mem="16G",
        sbatch=("--qos=high",),
        shared=((tmp_path / "data").resolve(), Path("/scratch/me")),
    )
    assert check_launcher("ray", tmp_path)[0].settings() == RaySettings()


def test_each_bad_launcher_setting_is_named_with_what_it_must_be(tmp_path):
    _, problems = check_launcher(
        {"slurm": {"tasks": 0, "time": "two hours", "mem": "lots", "sbatch": "qos", "gpu": 1}}, tmp_path
    )
    said = {key: message for key, _, message in problems}
    assert said["launcher.slurm.tasks"] == "must be an integer >= 1"
    assert "time limit as sbatch takes it" in said["launcher.slurm.time"]
    assert "4000M, 16G" in said["launcher.slurm.mem"]
    assert "list of sbatch options" in said["launcher.slurm.sbatch"]
    assert (
        said["launcher.slurm.gpu"].startswith("unknown setting; allowed:")
        and "gpus_per_task" in said["launcher.slurm.gpu"]
    )
    _, problems = check_launcher({"kubernetes": {}}, tmp_path)
    assert problems == [("launcher", "kubernetes", "unknown launcher; choose one of local, slurm, ray")]
    _, problems = check_launcher({"ray": {"num_gpus": -1, "workers": "many"}}, tmp_path)
    assert {key for key, _, _ in problems} == {"launcher.ray.num_gpus", "launcher.ray.workers"}


def test_automl_validate_reports_a_bad_launcher_with_exit_2(write_study, cli):
    from conftest import TINY_STUDY

    path = write_study(TINY_STUDY + "launcher: {slurm: {tasks: -1}}\n")
    result = cli("validate", str(path))
    assert result.code == 2 and "launcher.slurm.tasks: must be an integer >= 1 (got -1)" in result.err


def test_network_file_systems_and_declared_folders_count_as_shared():
    assert file_system_type(Path("/home/me/study"), MOUNTS) == "nfs4"
    assert file_system_type(Path("/home/me/local/x"), MOUNTS) == "ext4", "the longest mount point wins"
    assert is_shared(Path("/home/me/optuna.journal"), (), MOUNTS)
    assert is_shared(Path("/scratch/run/mlflow.db"), (), MOUNTS)
    assert not is_shared(Path("/tmp/optuna.journal"), (), MOUNTS)
    assert is_shared(Path("/tmp/work/optuna.journal"), (Path("/tmp/work"),), MOUNTS)


def test_the_tracking_uri_forms_that_are_files():
    assert tracking_file("sqlite:////data/mlflow.db") == Path("/data/mlflow.db")
    assert tracking_file("file:///data/mlruns") == Path("/data/mlruns")
    assert tracking_file("mlruns") == Path("mlruns")
    assert tracking_file("http://mlflow:5000") is None and tracking_file("databricks") is None


def test_sharing_problems_name_each_local_store_and_the_fix():
    problems = sharing_problems(
        "slurm",
        "journal:/tmp/optuna.journal",
        "sqlite:////tmp/mlflow.db",
        Path("/tmp/checkpoints"),
        (),
        "launcher.slurm",
        MOUNTS,
    )
    assert len(problems) == 3
    assert problems[0].startswith("the Optuna storage /tmp/optuna.journal is a local file that the slurm nodes")
    assert "launcher.slurm.shared" in problems[0] and "postgresql://" in problems[0]
    assert problems[1].startswith("the MLflow store /tmp/mlflow.db is local")
    assert "checkpoints.dir" in problems[2]
    assert (
        sharing_problems(
            "slurm", "postgresql://u@db/x", "http://mlflow:5000", Path("/home/me/ck"), (), "launcher.slurm", MOUNTS
        )
        == []
    )


def test_the_batch_script_requeues_on_usr1_and_keeps_the_storage_address_out():
    settings = SlurmSettings(
        tasks=3,
        partition="gpu",
        gpus_per_task=2,
        cpus_per_task=4,
        time="1:00:00",
        account="lab",
        signal_seconds=90,
        sbatch=("--qos=high",),
    )
    script = batch_script(
        settings,
        "demo",
        ["/venv/bin/python", "-m", "orchestrator", "worker", "/w/s.yaml", "--launched"],
        Path("/w"),
        Path("/w/slurm"),
    )
    for option in (
        "--array=0-2",
        "--requeue",
        "--signal=B:USR1@90",
        "--gpus-per-task=2",
        "--cpus-per-task=4",
        "--partition=gpu",
        "--time=1:00:00",
        "--account=lab",
        "--qos=high",
        "--chdir=/w",
        "--output=/w/slurm/%x-%A_%a.out",
    ):
        assert f"#SBATCH {option}\n" in script
    assert "trap requeue USR1" in script and 'scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"' in script
    assert "/venv/bin/python -m orchestrator worker /w/s.yaml --launched" in script
    assert "postgresql" not in script and "AUTOML_STORAGE" not in script, "the address travels in the environment"
