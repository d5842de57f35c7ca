"""The only gateway to the Hugging Face Hub: `client.HubClient` (existence, metadata, downloads,
offline answers from the HF cache) and the bounded retries every call goes through (`retry`).
"""
