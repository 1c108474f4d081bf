"""Where the folders shipped beside the code are: `sql/` and `analyses/`.

In the repository they are top-level folders; the wheel installs them inside the package
(`sigwarehouse/sql`, `sigwarehouse/analyses`: pyproject.toml's force-include). The
analyses are Python: in a source checkout, `CheckoutAnalyses` lets `import
sigwarehouse.analyses` find them in the top-level folder, so that the package, the tests
and a user's notebook import them by one name, installed or not.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ANALYSES = "sigwarehouse.analyses"


def shipped_dir(name: str) -> Path:
    """The folder `name` ('sql', 'analyses'): inside the installed package, else the
    repository's top-level one (a source checkout, an editable install)."""
    packaged = PACKAGE / name
    return packaged if packaged.is_dir() else PACKAGE.parents[1] / name


def installed_analyses() -> bool:
    """Whether the analyses are inside the package (a wheel), not in a checkout's folder.
    An `__init__.py`, not the folder: a checkout may keep an old analyses/__pycache__."""
    return (PACKAGE / "analyses" / "__init__.py").is_file()


class CheckoutAnalyses(importlib.abc.MetaPathFinder):
    """Finds `sigwarehouse.analyses` in a checkout's top-level analyses/ folder; its
    modules are then found there the ordinary way (the package's __path__)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != ANALYSES:
            return None
        folder = PACKAGE.parents[1] / "analyses"
        if not (folder / "__init__.py").is_file():
            return None
        return importlib.util.spec_from_file_location(
            ANALYSES, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
