"""The repository layout keeps the standard library's ``platform`` importable."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_platform_source_root_is_not_a_package():
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_import_platform_resolves_to_stdlib_with_repo_root_on_path():
    code = ("import sys; sys.path.insert(0, {root!r}); import platform, latentnas; "
            "print(platform.__file__); print(platform.python_version())").format(root=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.splitlines()
    assert not out[0].startswith(str(ROOT / "platform"))
    assert out[1] == ".".join(map(str, sys.version_info[:3]))


def test_packages_import_under_their_names():
    import encoders  # noqa: F401
    import latentnas
    import searchers  # noqa: F401

    assert pathlib.Path(latentnas.__file__).parent == ROOT / "platform" / "latentnas"
