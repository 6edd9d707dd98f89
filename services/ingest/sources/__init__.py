"""Source adapters: vendors' own payloads (webhooks, exports) mapped to contract events.

See docs/sources.md: one section per adapter, and how to write a new one.
"""
