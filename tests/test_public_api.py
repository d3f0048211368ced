"""The public Python API: names, scikit-learn contract, documented examples, import hygiene.

Every name in ``churnclv.__all__`` must resolve, every estimator it exports must
survive :func:`sklearn.base.clone`, and every public function or class must carry
a numpydoc ``Examples`` section whose doctests pass. The CLI, notebooks and
benchmarks import public names only, and no source file grows past 600 lines.
"""

from __future__ import annotations

import doctest
import inspect
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.base import BaseEstimator, clone

import churnclv

ROOT = Path(__file__).resolve().parents[1]
#: Names exempt from the Examples rule: exceptions and the version string.
NO_EXAMPLES = {"ChurnclvError", "InputError", "__version__"}
PRIVATE_IMPORT = re.compile(r"from churnclv\.[a-z_.]*\._|import churnclv\.[a-z_.]*\._")
#: Notebooks and benchmarks are user code: not even top-level private modules.
USER_PRIVATE_IMPORT = re.compile(r"(from|import) churnclv(\.[a-z_]+)*\._")
MAX_LINES = 600


def _public() -> dict[str, object]:
    return {name: getattr(churnclv, name) for name in churnclv.__all__}


def _documented() -> list[str]:
    return sorted(n for n in churnclv.__all__ if n not in NO_EXAMPLES)


def test_the_issue_names_import_from_the_top_level() -> None:
    from churnclv import (  # noqa: F401
        BetaGeoFitter,
        GammaGammaFitter,
        build_features,
        decide,
        generate,
        load_champion,
        load_policy,
        rfm_summary,
        score,
        train,
    )


def test_every_name_in_all_resolves() -> None:
    missing = [n for n in churnclv.__all__ if not hasattr(churnclv, n)]
    assert not missing, f"names in churnclv.__all__ that do not resolve: {missing}"
    assert len(set(churnclv.__all__)) == len(churnclv.__all__), "duplicates in __all__"
    assert set(churnclv._OWNERS) <= set(churnclv.__all__), "an owned name is missing in __all__"


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        churnclv.no_such_name  # noqa: B018


def _estimator_classes() -> list[type[BaseEstimator]]:
    return [
        obj for obj in _public().values() if inspect.isclass(obj) and issubclass(obj, BaseEstimator)
    ]


def test_the_btyd_fitters_are_scikit_learn_estimators() -> None:
    assert issubclass(churnclv.BetaGeoFitter, BaseEstimator)
    assert issubclass(churnclv.GammaGammaFitter, BaseEstimator)


@pytest.mark.parametrize("cls", _estimator_classes(), ids=lambda c: c.__name__)
def test_every_exported_estimator_clones(cls: type[BaseEstimator]) -> None:
    est = cls()
    copy = clone(est)
    assert type(copy) is cls
    assert copy.get_params() == est.get_params()
    assert copy is not est


def _has_examples(obj: object) -> bool:
    doc = inspect.getdoc(obj) or ""
    return re.search(r"^Examples\n-{8}\n", doc, re.MULTILINE) is not None


def test_every_public_name_has_an_examples_section() -> None:
    lacking = [n for n in _documented() if not _has_examples(getattr(churnclv, n))]
    assert not lacking, "public names without a numpydoc 'Examples' section: " + ", ".join(lacking)


@pytest.fixture
def in_tmp(tmp_path: Path) -> Iterator[Path]:
    """Run examples in an empty directory so files they write land there."""
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)


@pytest.mark.parametrize("name", _documented())
def test_the_examples_of_each_public_name_pass(name: str, in_tmp: Path) -> None:
    obj = getattr(churnclv, name)
    module = inspect.getmodule(obj)
    finder = doctest.DocTestFinder(recurse=True, exclude_empty=True)
    tests = [
        t
        for t in finder.find(obj, name, module=module, globs=dict(vars(module or churnclv)))
        if t.examples
    ]
    if not tests:
        pytest.fail(f"{name} has no doctest examples")
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed"


def test_the_package_docstring_example_passes(in_tmp: Path) -> None:
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(churnclv, "churnclv"):
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def _user_code() -> list[Path]:
    return sorted([*(ROOT / "notebooks").glob("*.py"), *(ROOT / "benchmarks").rglob("*.py")])


def test_cli_notebooks_and_benchmarks_import_no_private_module() -> None:
    offenders = []
    for path in [*_user_code(), ROOT / "src" / "churnclv" / "cli.py"]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if PRIVATE_IMPORT.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "private imports:\n" + "\n".join(offenders)


def test_notebooks_and_benchmarks_use_public_names_only() -> None:
    offenders = []
    for path in _user_code():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if USER_PRIVATE_IMPORT.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "private imports:\n" + "\n".join(offenders)


def test_no_source_file_exceeds_the_line_limit() -> None:
    long = []
    for folder in ("features", "training", "serving", "src"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            n = len(path.read_text().splitlines())
            if n > MAX_LINES:
                long.append(f"{path.relative_to(ROOT)}: {n} lines")
    assert not long, f"files over {MAX_LINES} lines:\n" + "\n".join(long)
