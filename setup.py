"""Package discovery: handwritten packages live in services/<name> and workloads/<name>
(import name ``ringrift_<name>``) and libs/; generated contracts live in libs/ringrift.

Everything else about the project is declared in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent


def discover() -> tuple[list[str], dict[str, str]]:
    packages: list[str] = []
    package_dir: dict[str, str] = {"": "libs"}
    for init in sorted(ROOT.glob("libs/**/__init__.py")):
        rel = init.parent.relative_to(ROOT / "libs")
        packages.append(".".join(rel.parts))
    roots = [p for area in ("services", "workloads") for p in (ROOT / area).iterdir() if (p / "__init__.py").exists()]
    for service in sorted(roots):
        top = f"ringrift_{service.name}"
        package_dir[top] = str(service.relative_to(ROOT))
        for init in sorted(service.glob("**/__init__.py")):
            rel = init.parent.relative_to(service)
            packages.append(".".join((top, *rel.parts)))
    return packages, package_dir


PACKAGES, PACKAGE_DIR = discover()
setup(
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
)  # package data (the job catalog, Alembic's template) is declared in pyproject.toml
