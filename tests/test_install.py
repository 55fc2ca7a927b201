"""The light install: `import gpm_sde` needs only the JAX stack, and a feature whose optional
package is missing says which extra to install."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gpm_sde._optional import progress_bar, require

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("sklearn", "ott", "jaxopt", "tqdm", "matplotlib", "scipy")


def test_importing_the_library_imports_no_optional_package():
    code = (
        "import sys, gpm_sde, gpm_sde.metrics, gpm_sde.data, gpm_sde.train; "
        f"print(sorted(m for m in {OPTIONAL!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


@pytest.mark.parametrize(
    ("module", "extra"), [("sklearn.datasets", "data"), ("ott.geometry.pointcloud", "ot")]
)
def test_a_missing_optional_package_names_its_extra(module, extra, monkeypatch):
    parts = module.split(".")
    for i in range(len(parts)):  # import now fails, even if an earlier test imported it
        monkeypatch.setitem(sys.modules, ".".join(parts[: i + 1]), None)
    with pytest.raises(ImportError, match=rf'pip install "gpm_sde\[{extra}\]"'):
        require(module, "this feature")


def test_the_digits_and_sinkhorn_say_which_extra(monkeypatch):
    import importlib

    import jax.numpy as jnp

    from gpm_sde.metrics import sinkhorn_divergence

    digits = importlib.import_module("gpm_sde.data._digits")

    digits._load.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"gpm_sde\[data\]"):
        digits._load()
    digits._load.cache_clear()
    monkeypatch.setitem(sys.modules, "ott", None)
    monkeypatch.setitem(sys.modules, "ott.geometry", None)
    monkeypatch.setitem(sys.modules, "ott.geometry.pointcloud", None)
    with pytest.raises(ImportError, match=r"gpm_sde\[ot\]"):
        sinkhorn_divergence(jnp.zeros((3, 2)), jnp.ones((3, 2)))


def test_progress_bar_without_tqdm_warns_once_and_still_iterates(monkeypatch):
    import gpm_sde._optional as optional

    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    monkeypatch.setattr(optional, "_warned", False)
    with pytest.warns(UserWarning, match="tqdm"):
        assert list(progress_bar([1, 2, 3])) == [1, 2, 3]
    bar = progress_bar(total=3)  # no second warning (pytest's `error` filters would raise)
    bar.update(1)
    bar.close()
    assert list(progress_bar([4], disable=True)) == [4]


HEAVY = ("jax", "jaxlib", "numpy", "equinox", "diffrax", "optax", "lineax", "jaxtyping")


def _imported_after(code: str) -> list[str]:
    """The heavy packages in `sys.modules` after running `code` in a fresh interpreter."""
    probe = f"import sys\n{code}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return eval(done.stdout.strip().splitlines()[-1])


def test_importing_the_package_imports_no_jax():
    assert _imported_after("import gpm_sde; gpm_sde.__version__; dir(gpm_sde)") == []


def test_the_top_level_names_load_on_first_use():
    import gpm_sde

    for name in gpm_sde.__all__:
        assert getattr(gpm_sde, name) is not None, name
    assert set(gpm_sde.__all__) <= set(dir(gpm_sde))
    assert gpm_sde.vp is gpm_sde.processes.vp
    with pytest.raises(AttributeError, match="no_such_name"):
        gpm_sde.no_such_name  # noqa: B018
    # The imports that type checkers see (under TYPE_CHECKING) are the lazy table's names.
    init = (ROOT / "gpm_sde" / "__init__.py").read_text(encoding="utf-8")
    assert gpm_sde.__all__ == ["__version__", *gpm_sde._SUBPACKAGES, *gpm_sde._NAMES]
    assert set(re.findall(r"\b(\w+) as \1\b", init)) == set(gpm_sde.__all__) - {"__version__"}


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["demo", "--help"], ["verify", "-h"]])
def test_cli_help_imports_no_jax(argv):
    code = f"from gpm_sde.cli import main\ncode = main({argv!r})\nassert code == 0, code"
    assert _imported_after(code) == []


def test_demo_without_the_repository_says_where_it_lives(monkeypatch, capsys):
    """The demo is `examples/demo.py`, which the installed package does not hold."""
    from gpm_sde.cli import demo, main

    monkeypatch.setattr(demo, "find_script", lambda cwd: None)
    assert main(["demo", "--fast"]) == 2
    err = capsys.readouterr().err
    assert "examples/demo.py" in err and "clone of the repository" in err


def test_demo_finds_the_example_script(tmp_path):
    from gpm_sde.cli.demo import find_script

    assert find_script(ROOT) == ROOT / "examples" / "demo.py"
    # From elsewhere, an editable install finds it next to the package's source.
    assert find_script(tmp_path) == ROOT / "examples" / "demo.py"


@pytest.mark.parametrize("argv", [["train", "--help"], ["sample", "--help"]])
def test_train_and_sample_help_import_no_jax(argv):
    """Their options load the command modules, which import NumPy but defer JAX to `run`."""
    code = f"from gpm_sde.cli import main\ncode = main({argv!r})\nassert code == 0, code"
    assert not set(_imported_after(code)) - {"numpy"}
