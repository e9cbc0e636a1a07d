"""The embedded default: a Temporal dev server, the simulators, a worker and the API in one go."""
