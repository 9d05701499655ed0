"""Credentials: the Secret value type, the encrypted vault in the state dir, key-pair checks.

Imports nothing else of gridctl, so the config layer (and anything else) can use it.
"""
