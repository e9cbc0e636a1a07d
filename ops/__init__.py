"""Operator tooling: publish action definitions, prepare a portal, replay an execution.

Each module is a plain async function over the project's clients so the CLI (cli.py) and the
tests call the same code against real services or the simulators.
"""
