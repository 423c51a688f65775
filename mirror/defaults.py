"""Default settings, in a module with no imports so the CLI and config load fast."""

PUBLIC_INDEX = "https://pypi.org/simple"
DEFAULT_INSTALLERS = ("pip", "setuptools", "wheel")
DEFAULT_PYTHON = "3.11"
DEFAULT_PLATFORM = "manylinux_2_28_x86_64"
