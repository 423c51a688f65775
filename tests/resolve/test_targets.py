"""Targets: the target's tags and markers, never the host's."""

from __future__ import annotations

import pytest
from packaging.markers import Marker

from airgap_mirror.errors import ConfigError
from airgap_mirror.resolve.targets import PythonTarget


@pytest.mark.parametrize(
    ("python", "platform", "wheel", "accepted"),
    [
        ("3.11", "manylinux_2_28_x86_64", "x-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", True),
        ("3.11", "manylinux_2_28_x86_64", "x-1-cp311-cp311-manylinux1_x86_64.whl", True),
        ("3.11", "manylinux_2_28_x86_64", "x-1-cp311-cp311-manylinux_2_34_x86_64.whl", False),
        ("3.11", "manylinux_2_28_x86_64", "x-1-cp37-abi3-manylinux_2_28_x86_64.whl", True),
        ("3.11", "manylinux_2_28_x86_64", "x-1-cp312-cp312-manylinux_2_28_x86_64.whl", False),
        ("3.11", "manylinux_2_28_x86_64", "x-1-cp311-cp311-manylinux_2_28_aarch64.whl", False),
        ("3.11", "manylinux_2_28_x86_64", "x-1-cp311-cp311-linux_x86_64.whl", False),
        ("3.11", "manylinux_2_28_x86_64", "x-1-py3-none-any.whl", True),
        ("3.9", "manylinux2014_aarch64", "x-1-cp39-cp39-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", True),
        ("3.9", "manylinux2014_aarch64", "x-1-cp39-cp39-manylinux_2_28_aarch64.whl", False),
        ("3.9", "manylinux2014_aarch64", "x-1-py2.py3-none-any.whl", True),
        ("3.12", "musllinux_1_2_x86_64", "x-1-cp312-cp312-musllinux_1_1_x86_64.whl", True),
        ("3.12", "macosx_11_0_arm64", "x-1-cp312-cp312-macosx_10_9_universal2.whl", True),
        ("3.12", "win_amd64", "x-1-cp312-cp312-win_amd64.whl", True),
    ],
)
def test_wheel_acceptance(python, platform, wheel, accepted):
    assert PythonTarget.parse(python, platform).accepts_wheel(wheel) is accepted


@pytest.mark.parametrize(
    ("platform", "uv"),
    [
        ("manylinux_2_28_x86_64", "x86_64-manylinux_2_28"),
        ("manylinux_2_30_x86_64", "x86_64-manylinux_2_28"),
        ("manylinux2014_aarch64", "aarch64-manylinux_2_17"),
        ("musllinux_1_2_x86_64", "x86_64-unknown-linux-musl"),
        ("macosx_11_0_arm64", "aarch64-apple-darwin"),
        ("win_amd64", "x86_64-pc-windows-msvc"),
    ],
)
def test_uv_platform(platform, uv):
    assert PythonTarget.parse("3.11", platform).uv_platform() == uv


@pytest.mark.parametrize(
    ("marker", "python", "platform", "expected"),
    [
        ('sys_platform == "darwin"', "3.11", "manylinux_2_28_x86_64", False),
        ('sys_platform == "darwin"', "3.11", "macosx_11_0_arm64", True),
        ('platform_machine == "aarch64"', "3.9", "manylinux_2_28_aarch64", True),
        ('platform_machine == "aarch64"', "3.11", "manylinux_2_28_x86_64", False),
        ('python_full_version >= "3.11.5"', "3.11.4", "manylinux_2_28_x86_64", False),
        ('python_full_version >= "3.11.5"', "3.11.7", "manylinux_2_28_x86_64", True),
        ('python_version < "3.10"', "3.9", "manylinux_2_28_x86_64", True),
        ('os_name == "nt"', "3.11", "win_amd64", True),
    ],
)
def test_markers_use_the_target(marker, python, platform, expected):
    assert PythonTarget.parse(python, platform).evaluate(Marker(marker)) is expected


@pytest.mark.parametrize(("python", "platform"), [("2.7", "manylinux_2_28_x86_64"), ("3.x", "win_amd64"),
                                                  ("3.11", "linux_x86_64"), ("3.11", "amiga")])
def test_bad_targets(python, platform):
    with pytest.raises(ConfigError):
        PythonTarget.parse(python, platform)


def test_target_id():
    assert PythonTarget.parse("3.11.4", "manylinux-2-28-x86-64".replace("-", "_")).id == "cp311-manylinux_2_28_x86_64"


def test_target_pairs_are_targets_not_a_product(apps, upstream, tmp_path):
    """Two --target pairs give two targets; [[targets]] tables do the same from mirror.toml;
    --python/--platform keep their product."""
    import json
    import subprocess
    import sys

    from tests.builders.upstreams import ARM, X86, clean_env

    def sync(*args: str) -> list[str]:
        proc = subprocess.run([sys.executable, "-m", "airgap_mirror.cli", "sync", *args, "--store", str(tmp_path / "s"),
                               "--index-url", upstream.url + "/simple", "--installers", "", "--json"],
                              capture_output=True, text=True, env=clean_env(), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["targets"]

    shop = str(apps / "shop")
    assert sync(shop, "--target", f"3.11:{X86}", "--target", f"3.9:{ARM}") == sorted([f"cp311-{X86}", f"cp39-{ARM}"])
    assert len(sync(shop, "--python", "3.11", "--python", "3.9", "--platform", X86, "--platform", ARM)) == 4
    (tmp_path / "mirror.toml").write_text(
        f'[apps]\npaths = ["{apps}/shop"]\n[[targets]]\npython = "3.10"\nplatform = "{ARM}"\n'
        f'[[targets]]\npython = "3.11"\nplatform = "{X86}"\n')
    assert sync("--config", str(tmp_path / "mirror.toml")) == sorted([f"cp310-{ARM}", f"cp311-{X86}"])


@pytest.mark.parametrize("bad", ["3.12", "manylinux2014_aarch64", "3.12:", "2.7:manylinux2014_aarch64", "3.12:windows95"])
def test_a_bad_target_pair_is_a_one_line_error(bad):
    from airgap_mirror.errors import ConfigError
    from airgap_mirror.resolve.targets import parse_target_pair

    with pytest.raises(ConfigError, match="target|Python|platform"):
        parse_target_pair(bad)


def test_a_module_name_in_requirements_gets_the_project_name(apps, upstream, tmp_path):
    """`yaml` is what the code imports; the project is PyYAML: the error says so."""
    import json
    import subprocess
    import sys

    from tests.builders.upstreams import X86, clean_env

    (apps / "shop" / "requirements.txt").write_text("alpha==1.0\nyaml\n")
    proc = subprocess.run([sys.executable, "-m", "airgap_mirror.cli", "sync", str(apps / "shop"), "--store", str(tmp_path / "s"),
                           "--python", "3.11", "--platform", X86, "--index-url", upstream.url + "/simple",
                           "--installers", "", "--json"], capture_output=True, text=True, env=clean_env())
    error = json.loads(proc.stdout)["apps"][0]["error"]
    assert "did you mean PyYAML?" in error
