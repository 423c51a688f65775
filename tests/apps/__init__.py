"""Tests of app folders: requirements files, hostile input, private sources."""
