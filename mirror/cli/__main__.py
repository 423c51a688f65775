"""`python -m airgap_mirror.cli`: the same as the `mirror` command."""

from airgap_mirror.cli import main

if __name__ == "__main__":  # not again in a spawned worker process (mirror serve's), which imports this as __mp_main__
    main()
