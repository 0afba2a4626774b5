"""Signed links (media, export, handover): itsdangerous, one salt per purpose.

Built by the links issue; nothing here yet.
"""
