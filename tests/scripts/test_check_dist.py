"""scripts.check_dist: the release files' contents and metadata (``make dist`` runs it on the real build)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

from scripts import check_dist

DIST_INFO = "airflow_provider_aep-0.1.0.dist-info"
METADATA = """Metadata-Version: 2.4
Name: airflow-provider-aep
Version: 0.1.0
License-Expression: Apache-2.0
Classifier: Framework :: Apache Airflow
Classifier: Framework :: Apache Airflow :: Provider
Classifier: Programming Language :: Python :: 3.11
Requires-Dist: apache-airflow<4,>=3.2
"""
ENTRY_POINTS = """[airflow.plugins]
aep_provider = aep_provider.ui.plugin:AEPDeliveriesPlugin

[apache_airflow_provider]
provider_info = aep_provider.get_provider_info:get_provider_info

[console_scripts]
aep-emulator = aep_provider.emulator.__main__:main
"""


def _write(dist: Path, files: set[str], *, extra: str | None = None, metadata: str = METADATA) -> None:
    """A wheel and an sdist holding ``files`` (package paths), plus ``extra`` in both."""
    dist.mkdir()
    with zipfile.ZipFile(dist / "airflow_provider_aep-0.1.0-py3-none-any.whl", "w") as whl:
        for name in sorted(files | ({extra} if extra else set())):
            whl.writestr(name, "")
        whl.writestr(f"{DIST_INFO}/METADATA", metadata)
        whl.writestr(f"{DIST_INFO}/entry_points.txt", ENTRY_POINTS)
        whl.writestr(f"{DIST_INFO}/licenses/LICENSE", "Apache License")
    with tarfile.open(dist / "airflow_provider_aep-0.1.0.tar.gz", "w:gz") as sdist:
        names = files | {"pyproject.toml", "README.md", "LICENSE"} | ({extra} if extra else set())
        for name, body in [*((n, b"") for n in sorted(names)), ("PKG-INFO", metadata.encode())]:
            info = tarfile.TarInfo(f"airflow_provider_aep-0.1.0/{name}")
            info.size = len(body)
            sdist.addfile(info, io.BytesIO(body))


def test_complete_release_files_pass(tmp_path):
    _write(tmp_path / "dist", check_dist.package_files())
    assert check_dist.check(tmp_path / "dist") == []


def test_a_missing_module_and_a_repository_file_are_named(tmp_path):
    files = check_dist.package_files()
    files.discard("aep_provider/emulator/server.py")
    _write(tmp_path / "dist", files, extra="tests/test_docs_links.py")
    problems = check_dist.check(tmp_path / "dist")
    assert "airflow_provider_aep-0.1.0-py3-none-any.whl: aep_provider/emulator/server.py missing" in problems
    assert "airflow_provider_aep-0.1.0.tar.gz: aep_provider/emulator/server.py missing" in problems
    assert any("tests/test_docs_links.py does not belong in the wheel" in p for p in problems)
    assert any("tests/test_docs_links.py does not belong in the sdist" in p for p in problems)


def test_missing_provider_classifier_is_named(tmp_path):
    _write(
        tmp_path / "dist",
        check_dist.package_files(),
        metadata=METADATA.replace("Classifier: Framework :: Apache Airflow :: Provider\n", ""),
    )
    problems = check_dist.check(tmp_path / "dist")
    assert problems and all("'Framework :: Apache Airflow :: Provider' missing" in p for p in problems)
    assert len(problems) == 2  # the wheel's METADATA and the sdist's PKG-INFO
