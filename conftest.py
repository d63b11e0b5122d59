"""Root conftest: the test tiers are wired in tests/conftest.py; LocalKube's pytest plugin loads by its entry point."""
