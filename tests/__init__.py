"""The product's tests, as a package: test modules import shared code as ``tests.helpers``."""
