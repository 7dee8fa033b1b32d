"""Fixtures for provider integration tests."""

from __future__ import annotations

from tests.support.fake_openai import fake_openai as fake_openai
