"""devhost: a local stand-in for Azure Functions Core Tools and the Durable extension.

It runs any v2-model Python Functions app unchanged (HTTP triggers, Durable orchestrators and
activities) with the extension's semantics, on Azurite. Generic: it imports nothing from the
app it hosts.
"""
