"""Portals, tokens, Kleer credentials and field mappings in a database API and workers share."""
