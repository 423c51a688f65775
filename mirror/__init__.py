"""airgap-mirror: resolve, fetch, bundle and serve app dependencies across an air gap."""

__version__ = "0.1.0"
