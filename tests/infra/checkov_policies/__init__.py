"""Custom checkov policies (see evalruns_policies.py); checkov needs this file to load them."""
