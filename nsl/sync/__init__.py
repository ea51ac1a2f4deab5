"""Sync between nsl databases, Fossil-style: artifacts named by their hash, clusters, phantoms.

    artifacts   the artifact store seen by sync: naming, the lazy index, content, staging, clusters
    protocol    the message format (cards) and its limits; knows nothing of HTTP
    server      answers one request message against a database (stateless between requests)
    client      the loop that drives pull, push, sync and clone until nothing is missing
    transport   how a message reaches a remote: HTTP (requests) or a local path, in process
"""
