"""The settings pages for the admin of an installed portal (server-rendered, Starlette + Jinja2)."""
