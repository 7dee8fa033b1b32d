"""LLM providers: one async `complete(request)` per API family, plus the model catalog.

Import from the modules (`catalog`, `registry`, `base`, one per family): this package imports
nothing, so that reading the catalog never loads httpx or a provider.
"""
