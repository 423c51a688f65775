"""Tests of the Debian side."""
