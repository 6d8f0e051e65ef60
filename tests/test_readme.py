"""The README's examples work as written, and CI runs exactly the README's test command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_block(language: str, first_line: str) -> str:
    """The README's fenced block of `language` whose first line starts with `first_line`."""
    for block in re.findall(rf"```{language}\n(.*?)```", README, flags=re.S):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"no ```{language} block starting with {first_line!r} in the README")


def test_ci_runs_the_readme_test_command():
    commands = code_block("bash", "bash scripts/quickstart.sh").splitlines()
    test_command = next(line.split("#")[0].strip() for line in commands if "test" in line.split("#")[0])
    ci_lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert f"exec {test_command}" in ci_lines


def test_the_readme_study_example_is_the_quickstart_and_validates(cli, workdir):
    example = code_block("yaml", "name: quickstart")
    assert yaml.safe_load(example) == yaml.safe_load((ROOT / "studies" / "quickstart.yaml").read_text())
    (workdir / "example.yaml").write_text(example)
    assert cli("validate", workdir / "example.yaml").code == 0


def test_the_readme_local_plugin_works(cli, workdir, write_study):
    (workdir / "plugins").mkdir()
    (workdir / "plugins" / "swish.py").write_text(code_block("python", "# plugins/swish.py"))
    listed = cli("plugins", "--json")
    assert listed.code == 0
    swish = [p for p in json.loads(listed.out) if p["name"] == "swish"]
    assert swish and swish[0]["kind"] == "activation" and swish[0]["plugin"].endswith("plugins/swish.py")
    study = write_study("""
        name: readme-swish
        dataset: digits
        search:
          architecture: mlp
          activation: {relu: {}, swish: {beta: {low: 1.0, high: 2.0}}}
          loss: cross_entropy
          optimizer: adam
        """)
    result = cli("validate", study)
    assert result.code == 0 and "activation.swish.beta: 1.0..2.0" in result.out
