"""Check the release files ``make dist`` built: what the wheel and the sdist hold, and the metadata.

Command line::

    python -m scripts.check_dist dist/

The wheel must hold every tracked file of ``aep_provider/`` that the package needs at run time
(modules, the emulator, ``py.typed``, the history migrations, the UI templates) and nothing of the
repository's tests, bench, scripts or DAGs; the sdist must hold what a source build needs
(``pyproject.toml``, ``README.md``, ``LICENSE``, the package). Exit 1 with one line per problem.
"""

from __future__ import annotations

import argparse
import email
import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "aep_provider"
#: Top-level folders of the repository that no release file may carry.
REPO_ONLY = ("tests/", "bench/", "scripts/", "dags/", "docs/")
SDIST_NEEDS = ("pyproject.toml", "README.md", "LICENSE", "PKG-INFO")
ENTRY_POINTS = ("[apache_airflow_provider]", "[airflow.plugins]", "aep-emulator = ")
CLASSIFIERS = ("Framework :: Apache Airflow", "Framework :: Apache Airflow :: Provider")


def package_files() -> set[str]:
    """Tracked files of the package, as paths relative to the repository (``aep_provider/...``)."""
    out = subprocess.run(["git", "ls-files", PACKAGE], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    return set(out.split())


def check_metadata(meta: Message, where: str) -> list[str]:
    problems = []
    classifiers = meta.get_all("Classifier") or []
    problems += [f"{where}: classifier {c!r} missing" for c in CLASSIFIERS if c not in classifiers]
    if not any(c.startswith("Programming Language :: Python :: 3.") for c in classifiers):
        problems.append(f"{where}: no Python version classifier")
    if meta.get("License-Expression") != "Apache-2.0":
        problems.append(f"{where}: License-Expression is {meta.get('License-Expression')!r}, not 'Apache-2.0'")
    if not any(r.startswith(("apache-airflow<", "apache-airflow>")) for r in meta.get_all("Requires-Dist") or []):
        problems.append(f"{where}: no apache-airflow requirement")
    return problems


def check_wheel(path: Path, needed: set[str]) -> list[str]:
    with zipfile.ZipFile(path) as whl:
        names = set(whl.namelist())
        dist_info = next((n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")), None)
        if dist_info is None:
            return [f"{path.name}: no .dist-info folder"]
        problems = check_metadata(email.message_from_bytes(whl.read(f"{dist_info}/METADATA")), path.name)
        entry_points = (
            whl.read(f"{dist_info}/entry_points.txt").decode() if f"{dist_info}/entry_points.txt" in names else ""
        )
        if f"{dist_info}/licenses/LICENSE" not in names:
            problems.append(f"{path.name}: LICENSE missing from {dist_info}/licenses/")
    problems += [f"{path.name}: entry point {e!r} missing" for e in ENTRY_POINTS if e not in entry_points]
    problems += [f"{path.name}: {name} missing" for name in sorted(needed - names)]
    problems += [
        f"{path.name}: {name} does not belong in the wheel"
        for name in sorted(names)
        if not (name.startswith((f"{PACKAGE}/", f"{dist_info}/")))
    ]
    return problems


def check_sdist(path: Path, needed: set[str]) -> list[str]:
    with tarfile.open(path) as sdist:
        members = {m.name.split("/", 1)[1] for m in sdist.getmembers() if m.isfile() and "/" in m.name}
        root = sdist.getmembers()[0].name.split("/")[0]
        pkg_info = sdist.extractfile(f"{root}/PKG-INFO")
        problems = check_metadata(email.message_from_bytes(pkg_info.read()), path.name) if pkg_info else []
    problems += [f"{path.name}: {name} missing" for name in sorted((needed | set(SDIST_NEEDS)) - members)]
    problems += [
        f"{path.name}: {name} does not belong in the sdist" for name in sorted(members) if name.startswith(REPO_ONLY)
    ]
    return problems


def check(dist: Path) -> list[str]:
    """Every problem with the one wheel and the one sdist in ``dist`` (empty when both are right)."""
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        return [f"{dist}: expected one wheel and one sdist, found {[p.name for p in wheels + sdists]}"]
    # Compiled files are never tracked; everything else of the package ships (modules and package data).
    needed = {name for name in package_files() if not name.endswith((".pyc", ".pyo"))}
    return check_wheel(wheels[0], needed) + check_sdist(sdists[0], needed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", type=Path, help="the folder python -m build wrote (dist/)")
    args = parser.parse_args(argv)
    problems = check(args.dist)
    for problem in problems:
        print(f"check_dist: {problem}", file=sys.stderr)
    if not problems:
        print(
            f"check_dist: {', '.join(sorted(p.name for p in args.dist.iterdir()))}: contents and metadata as expected"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
