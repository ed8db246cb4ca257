"""setup.cfg and environment.yml ask for the same packages; the install pins torch as the README says."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_setup_cfg():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    required = [r for r in setup["options"]["install_requires"].splitlines() if r.strip()]
    extras = setup["options.extras_require"]
    assert set(extras) == {"dev", "slurm", "onnx", "mlflow", "wandb"}  # environment.yml installs every extra
    dev = [r for name in extras for r in extras[name].splitlines() if r.strip()]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_list = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_side = {r.replace(" ", "") for r in pip_list if not r.startswith("-e")}
    assert conda_side == {r.replace(" ", "") for r in required + dev}


def test_torch_range_admits_the_pinned_install():
    setup = (ROOT / "setup.cfg").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "torch==2.13.0" in makefile
    (torch_line,) = [line.strip() for line in setup.splitlines() if _name(line) == "torch"]
    assert "==" not in torch_line and ">=" in torch_line
