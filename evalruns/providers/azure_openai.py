"""Azure OpenAI: chat completions on a deployment of your own resource.

The protocol is OpenAI's (body, answer, error body, rate-limit headers), so this module only says
where requests go and how they authenticate: the deployment is in the URL (the catalog's version
string is the deployment name), the API version is a query parameter, and the key travels in an
`api-key` header. The model version Azure reports is the model behind the deployment.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from evalruns.providers.base import CompletionRequest
from evalruns.providers.http_provider import DEFAULT_TIMEOUT_SECONDS
from evalruns.providers.openai_compat import ChatCompletionsProvider

DEFAULT_PROVIDER_NAME = "azure-openai"
# The newest generally available data-plane version; AZURE_OPENAI_API_VERSION overrides it.
DEFAULT_API_VERSION = "2024-10-21"
API_VERSION_PARAM = "api-version"
KEY_HEADER = "api-key"


class AzureOpenAIProvider(ChatCompletionsProvider):
    """A `Provider` for `{endpoint}/openai/deployments/{deployment}/chat/completions`."""

    def __init__(
        self,
        endpoint: str,
        api_key: str | None,
        api_version: str = DEFAULT_API_VERSION,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        client: httpx.AsyncClient | None = None,
        *,
        name: str = DEFAULT_PROVIDER_NAME,
    ) -> None:
        super().__init__(api_key, endpoint, timeout_seconds, client, name=name)
        self.api_version = api_version

    def url_for(self, deployment: str) -> str:
        """The chat completions endpoint of one deployment."""
        return str(self._completions_url_for(deployment))

    def _completions_url(self, request: CompletionRequest) -> httpx.URL:
        return self._completions_url_for(request.model)

    def _completions_url_for(self, deployment: str) -> httpx.URL:
        path = f"/openai/deployments/{quote(deployment, safe='')}/chat/completions"
        return self._url(path)

    def _listing_url(self) -> httpx.URL:
        return self._url("/openai/models")

    def _url(self, path: str) -> httpx.URL:
        return httpx.URL(self.base_url + path, params={API_VERSION_PARAM: self.api_version})

    def _headers(self) -> dict[str, str]:
        return {KEY_HEADER: self._api_key} if self._api_key else {}

    def _body(self, request: CompletionRequest) -> dict[str, Any]:
        # The deployment decides the model; Azure has no use for a `model` field.
        body = super()._body(request)
        del body["model"]
        return body
