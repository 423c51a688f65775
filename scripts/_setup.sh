# Sourced by scripts/test, scripts/bench and scripts/demo: installs what the project needs on a fresh
# Debian machine (as root), and a .venv with the project and its test extras, from PyPI only: this
# machine's pip.conf and PIP_* settings are shut out so what runs is what a site would get.
# SETUP_FOR=demo (scripts/demo) stops at what the tool itself runs with; the rest (real targets,
# real clients, a browser, qemu, Poetry and pipenv) is for the tests and benchmarks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SETUP_FOR=${SETUP_FOR:-test}

need_apt=()
tools="gpg:gnupg gpgv:gpgv minisign:minisign xz:xz-utils gpgconf:gpgconf zstd:zstd git:git"
if [ "$SETUP_FOR" != demo ]; then
  tools="$tools apt-ftparchive:apt-utils dpkg-deb:dpkg-dev dpkg-scanpackages:dpkg-dev debootstrap:debootstrap chromium:chromium"
  # arm64 targets run here for real under qemu (tests/apt/test_arm64_target.py).
  [ -x /usr/bin/qemu-aarch64-static ] || need_apt+=(qemu-user-static)
  command -v update-binfmts >/dev/null 2>&1 || need_apt+=(binfmt-support)
  # Debian's python3-apt (`import apt`, as unattended-upgrades runs it): our wheel installs beside it
  # (tests/test_installed_names.py).
  [ -d /usr/lib/python3/dist-packages/apt ] || need_apt+=(python3-apt python3-venv)
fi
for tool in $tools; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need_apt+=("${tool##*:}")
done
# Debian's archive keys: the default upstream for Aptfiles is verified with them.
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need_apt+=(debian-archive-keyring)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ "$SETUP_FOR" != demo ]; then
# nginx, to test and bench scripts/nginx.conf: Debian's binary unpacked under .tools/ (installing the
# package would start a system service on port 80).
if ! command -v nginx >/dev/null 2>&1 && [ ! -x .tools/nginx/usr/sbin/nginx ]; then
  echo "setup: unpacking Debian's nginx into .tools/nginx" >&2
  mkdir -p .tools/debs
  (cd .tools/debs && { apt-get download nginx nginx-common >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get download nginx nginx-common >/dev/null 2>&1; }; })
  for deb in .tools/debs/*.deb; do dpkg-deb -x "$deb" .tools/nginx; done
fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# The demo installs the project alone; the tests add their extras (pytest, mypy, ruff, pip-tools,
# SeaweedFS: most of the download). A test install serves the demo too.
hash=$(cat pyproject.toml | sha256sum | cut -c1-16)
spec='.[test]' stamp=.venv/.installed-$hash
[ "$SETUP_FOR" = demo ] && spec='.' stamp=.venv/.installed-demo-$hash
if [ ! -f "$stamp" ] && [ ! -f ".venv/.installed-$hash" ]; then
  echo "setup: installing the project into .venv ($spec)" >&2
  env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_CONFIG_FILE=/dev/null \
    .venv/bin/python -m pip install --isolated -q --disable-pip-version-check \
      --index-url https://pypi.org/simple -e "$spec"
  rm -f .venv/.installed-*
  touch "$stamp"
fi

[ "$SETUP_FOR" = demo ] && return 0  # (sourced: the demo has what it runs with)

# qemu-aarch64 registered with the kernel's binfmt_misc (mounted first where it is not yet).
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
  update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
fi

# The package managers lock apps install with (tests/e2e/test_upstream_names.py): Poetry and pipenv
# from PyPI, in a venv of their own (.cache/tools), pinned.
if [ ! -x .cache/tools/bin/poetry ] || [ ! -x .cache/tools/bin/pipenv ]; then
  echo "setup: installing Poetry and pipenv into .cache/tools" >&2
  "$PY" -m venv .cache/tools
  env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_CONFIG_FILE=/dev/null \
    .cache/tools/bin/python -m pip install --isolated -q --disable-pip-version-check \
      --index-url https://pypi.org/simple "poetry==2.5.1" "pipenv==2026.10.3"
fi

# PEP 740 provenance verified inside as an auditor would (tests/serve/test_provenance.py): the real
# pypi-attestations from PyPI in a venv of its own, and its sdist, whose test assets are real
# distributions with the real provenance PyPI served for them.
if [ ! -x .cache/attest/bin/pypi-attestations ] || [ ! -f .cache/attest/pypi_attestations-0.0.31.tar.gz ]; then
  echo "setup: installing pypi-attestations into .cache/attest" >&2
  "$PY" -m venv .cache/attest
  env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_CONFIG_FILE=/dev/null \
    .cache/attest/bin/python -m pip install --isolated -q --disable-pip-version-check \
      --index-url https://pypi.org/simple "pypi-attestations==0.0.31"
  env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_CONFIG_FILE=/dev/null \
    .cache/attest/bin/python -m pip download --isolated -q --disable-pip-version-check --no-deps --no-binary :all: \
      --index-url https://pypi.org/simple "pypi-attestations==0.0.31" -d .cache/attest
fi

# Real targets and real clients, made once and cached under .cache/ (the tests themselves stay offline):
# a debootstrap --variant=minbase bookworm root and a slice of bookworm to serve (tests/realtarget.py),
# and the pip and uv wheels of the client matrix (tests/clients.py).
if [ ! -f .cache/targets/bookworm-slice/complete-v2 ] || [ ! -f .cache/targets/bookworm-amd64-minbase.tar ] \
   || [ ! -f .cache/targets/trixie-amd64-minbase.tar ] || [ ! -f .cache/targets/bookworm-arm64-minbase.tar ]; then
  echo "setup: building debootstrap minbase roots (bookworm and trixie amd64, bookworm arm64 under qemu) and a bookworm slice in .cache/targets" >&2
fi
.venv/bin/python -m tests.builders.realtarget build
.venv/bin/python -m tests.builders.clients fetch
