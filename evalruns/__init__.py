"""evalruns: LLM evaluation runs. The library: no Azure Functions imports live here."""
