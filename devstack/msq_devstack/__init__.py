"""Local development stack: real Kubernetes API server, OpenBao, Redis and anvil on 127.0.0.1.

One implementation serves the pytest fixtures and `make demo`.
"""
