"""The smoke subset against the built wheel, once per supported Airflow version, each in a clean environment.

Command line (``make test-versions`` builds the wheel first)::

    python -m scripts.test_versions [--dist dist] 3.2 3.3 [-- PYTEST_ARGS...]

For each version: a new virtualenv in ``.local/versions/airflow-<version>/venv``; the wheel from
``dist/`` installed into it with its ``test`` extra, under that version's pins
(``constraints/airflow-<version>.txt``, or ``constraints.txt`` for the version the main environment
runs); a copy of the checkout without the package (tests, scripts, dags, docs, pyproject.toml's
pytest settings) in ``.local/versions/airflow-<version>/src``; then ``pytest -m smoke`` there. The tests
import the installed package (``tests/conftest.py`` checks it through ``AEP_PROVIDER_INSTALLED_IN``),
never the checkout. Exit status: the first failing version's pytest status, else 0.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
WORK = REPO_ROOT / ".local" / "versions"
#: Left out of the copied checkout: the package comes from the wheel.
PACKAGE = "aep_provider"
UV = Path(sys.executable).with_name("uv")


def constraints_for(version: str) -> Path:
    """The pins of ``version``: its own file, or ``constraints.txt`` when that pins this version."""
    own = REPO_ROOT / "constraints" / f"airflow-{version}.txt"
    if own.is_file():
        return own
    main = REPO_ROOT / "constraints.txt"
    pinned = re.search(r"^apache-airflow==(\S+)$", main.read_text(), re.M)
    if pinned and pinned.group(1).startswith(f"{version}."):
        return main
    raise SystemExit(
        f"test_versions: no pins for Airflow {version}: add constraints/airflow-{version}.in and run `make lock`"
    )


def run(cmd: list[str], **kwargs) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, **kwargs)


def prepare(version: str, wheel: Path) -> tuple[Path, Path]:
    """A fresh venv with the wheel installed, and the test tree beside it: ``(python, src)``."""
    root = WORK / f"airflow-{version}"
    shutil.rmtree(root, ignore_errors=True)
    venv, src = root / "venv", root / "src"
    run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)])
    python = venv / "bin" / "python"
    run([str(UV), "pip", "install", "--quiet", "--python", str(python), "--constraint", str(constraints_for(version)),
         f"{wheel}[test]"])  # fmt: skip
    # Tracked and new (not ignored) files, so that uncommitted test changes are tested too.
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if name.startswith(f"{PACKAGE}/") or not source.is_file():
            continue
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, src / name)
    return python, src


def smoke(version: str, wheel: Path, pytest_args: list[str]) -> int:
    started = time.monotonic()
    python, src = prepare(version, wheel)
    installed = subprocess.run(
        [str(python), "-c", "import airflow, sys; print(airflow.__version__, sys.prefix)"],
        cwd=src, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    if not installed[0].startswith(f"{version}."):
        raise SystemExit(f"test_versions: the environment for {version} has Airflow {installed[0]}")
    env = {**os.environ, "AEP_PROVIDER_INSTALLED_IN": installed[1]}
    env.pop("PYTHONPATH", None)
    print(f"test_versions: Airflow {installed[0]}, {wheel.name}, smoke subset in {src}", flush=True)
    code = subprocess.run(
        [str(python), "-m", "pytest", "-m", "smoke", "-p", "no:cacheprovider", "--durations=5", *pytest_args],
        cwd=src, env=env, stdin=subprocess.DEVNULL,
    ).returncode  # fmt: skip
    print(f"test_versions: Airflow {installed[0]}: pytest exit {code} in {time.monotonic() - started:.0f}s", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="+", help="Airflow minor versions, e.g. 3.2 3.3")
    parser.add_argument("--dist", type=Path, default=REPO_ROOT / "dist", help="where `make dist` put the wheel")
    args = parser.parse_args(argv)
    wheels = sorted(args.dist.glob("*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"test_versions: expected one wheel in {args.dist} (run `make dist`), found {len(wheels)}")
    failed = 0
    for version in args.versions:
        code = smoke(version, wheels[0].resolve(), pytest_args)
        failed = failed or code
    return failed


if __name__ == "__main__":
    sys.exit(main())
