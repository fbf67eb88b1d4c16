"""The installed package finds its grammar and bundled sample: a wheel, not only a checkout.

Builds the wheel, installs it (without dependencies) into a fresh virtual environment
that sees only the already-installed dependencies (lark, sortedcontainers, tabulate: a ``.pth``
file naming the folders they live in, so it works from inside a venv too, where
``system_site_packages`` would reach the base interpreter instead), and runs flatview from
outside the source tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import lark
import pytest
import sortedcontainers
import tabulate

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    (whl,) = out.glob("flatview-*.whl")
    return whl


def test_wheel_ships_grammar_and_sample(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "flatview/grammars/mtree.lark" in names
    assert "flatview/grammars/__init__.py" in names
    assert "flatview/data/seed003-sas3008.txt" in names
    # nothing from the checkout's top level leaks in as a package
    assert not any(n.startswith(("grammars/", "tests/", "samples/")) for n in names)


def test_installed_wheel_runs_from_elsewhere(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    # The folders holding the dependencies, not their site-packages as a site dir: a path
    # listed in a .pth file is not scanned for .pth files, so the checkout's editable
    # install (itself a .pth hook) stays out of the new venv.
    deps = sorted(
        {str(Path(m.__file__).resolve().parents[1]) for m in (lark, sortedcontainers)}
        | {str(Path(tabulate.__file__).resolve().parent)}
    )
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "flatview-test-deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "-q",
            "--no-deps",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [str(py), "-c", "import flatview.grammars, sys; print(flatview.grammars.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(env_dir) in where.stdout, where.stdout  # the wheel, not the checkout
    res = subprocess.run(
        [str(py), "-m", "flatview", "advise", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["devices"][0]["device"] == "0001:03:00.0"
