"""Shared pytest fixtures: paths to the built library and helper programs."""
import os
import pathlib

import pytest

SOURCE_DIR = pathlib.Path(os.environ.get("SECCHAT_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
HELPER_DIR = pathlib.Path(os.environ.get("SECCHAT_HELPER_DIR", SOURCE_DIR / "build" / "tests"))
VECTORS_DIR = pathlib.Path(os.environ.get("SECCHAT_VECTORS_DIR", SOURCE_DIR / "tests" / "vectors"))


@pytest.fixture(scope="session")
def helper_dir():
    return HELPER_DIR


@pytest.fixture(scope="session")
def vectors_dir():
    return VECTORS_DIR
