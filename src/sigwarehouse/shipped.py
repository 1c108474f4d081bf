"""Where the folders shipped beside the code are: `sql/` and `analyses/`.

In the repository they are top-level folders; the wheel installs them inside the package
(`sigwarehouse/sql`, `sigwarehouse/analyses`: pyproject.toml's force-include). The
analyses are Python: in a source checkout, `CheckoutAnalyses` lets `import
sigwarehouse.analyses` find them in the top-level folder, so that the package, the tests
and a user's notebook import them by one name, installed or not.

`import sigwarehouse` (every CLI start) imports this module: it needs only os.path, not
pathlib or importlib.abc (tens of milliseconds).
"""

from __future__ import annotations

import os.path

PACKAGE = os.path.dirname(os.path.realpath(__file__))
CHECKOUT = os.path.dirname(os.path.dirname(PACKAGE))  # the repository, in a checkout
ANALYSES = "sigwarehouse.analyses"


def shipped_dir(name: str):
    """The folder `name` ('sql', 'analyses') as a Path: inside the installed package,
    else the repository's top-level one (a source checkout, an editable install)."""
    from pathlib import Path  # pathlib: not at `import sigwarehouse` (see above)

    packaged = Path(PACKAGE) / name
    return packaged if packaged.is_dir() else Path(CHECKOUT) / name


def installed_analyses() -> bool:
    """Whether the analyses are inside the package (a wheel), not in a checkout's folder.
    An `__init__.py`, not the folder: a checkout may keep an old analyses/__pycache__."""
    return os.path.isfile(os.path.join(PACKAGE, "analyses", "__init__.py"))


class CheckoutAnalyses:
    """Finds `sigwarehouse.analyses` in a checkout's top-level analyses/ folder (a meta
    path finder: sys.meta_path asks it first); its modules are then found there the
    ordinary way, through the package's __path__."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != ANALYSES:
            return None
        folder = os.path.join(CHECKOUT, "analyses")
        init = os.path.join(folder, "__init__.py")
        if not os.path.isfile(init):
            return None
        from importlib.util import spec_from_file_location  # only when the analyses load

        return spec_from_file_location(ANALYSES, init, submodule_search_locations=[folder])
