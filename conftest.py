"""Root conftest: the test tiers and the LocalKube plugin are wired in tests/conftest.py."""
