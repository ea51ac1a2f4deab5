"""The core library: storage, hashing, history and queries. Never imports the CLI or a server."""
