"""Proxy integrations: the LiteLLM hook (``litellm_hook``: reserve before a call, publish the usage after it)
and its pure mapping of LiteLLM's requests to subjects and events (``litellm_mapping``)."""
