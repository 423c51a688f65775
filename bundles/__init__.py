"""Signed bundles: keys, create, verify and import (the air-gap crossing)."""
