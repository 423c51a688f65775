"""Tests of whole flows with real clients and real targets."""
