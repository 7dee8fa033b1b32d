"""The model catalog as users see it."""

from __future__ import annotations

from evalruns.domain.base import ApiModel
from evalruns.services.container import Services


class ModelListing(ApiModel):
    id: str
    provider: str
    display_name: str
    versions: list[str]
    default_version: str
    is_available: bool
    cost_input_per_million: float
    cost_output_per_million: float


def list_models(services: Services, available_only: bool) -> list[ModelListing]:
    catalog = services.catalog
    listings = [
        ModelListing(
            id=model.id,
            provider=model.provider,
            display_name=model.display_name,
            versions=list(model.versions),
            default_version=model.default_version,
            is_available=catalog.is_available(model.provider, services.settings),
            cost_input_per_million=model.cost_input_per_million,
            cost_output_per_million=model.cost_output_per_million,
        )
        for model in catalog.models.values()
    ]
    return [listing for listing in listings if listing.is_available or not available_only]
