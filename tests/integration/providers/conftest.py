"""Fixtures for provider integration tests: one running fake server per API family."""

from __future__ import annotations

from tests.support.fake_anthropic import fake_anthropic as fake_anthropic
from tests.support.fake_gemini import fake_gemini as fake_gemini
from tests.support.fake_openai import fake_azure_openai as fake_azure_openai
from tests.support.fake_openai import fake_openai as fake_openai
