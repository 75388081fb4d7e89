"""The built wheel installs the plugins: twistd finds rpn and mutuelle from an installation."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.integration.harness import ROOT

CHECK = """
import sys
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from rpn.routing import routing_policies
import rpn
names = sorted(p.tapname for p in getPlugins(IServiceMaker))
assert rpn.__file__.startswith(sys.argv[1]), rpn.__file__
print(" ".join(n for n in names if n in ("rpn", "mutuelle", "indicators")))
print(" ".join(sorted(routing_policies())))
"""


def test_installed_wheel_provides_the_twistd_plugins(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("piano_roc-*.whl")
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert (target / "twisted" / "plugins" / "piano_plugins.py").exists()
    assert not (target / "twisted" / "plugins" / "__init__.py").exists()
    # -S: no .pth processing, so the source tree (an editable install) is not on the path;
    # only the installed wheel and the dependencies' site-packages are.
    deps = sysconfig.get_paths()["purelib"]
    done = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            f"import sys; sys.path[:0] = [{str(target)!r}, {deps!r}]\n" + CHECK,
            str(target),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    plugins, policies = done.stdout.splitlines()
    assert plugins.split() == ["indicators", "mutuelle", "rpn"]
    assert policies.split() == ["http-header", "soap-header", "url-path"]
