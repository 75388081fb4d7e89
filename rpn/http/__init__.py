"""The relay's HTTP/1.1: the server establishments reach, and the client towards AMCs.

- ``server``: the entry point's server, on ``httptools`` (llhttp, Node.js's parser), with the
  relay's limits, timers and back-pressure around it;
- ``client`` and ``answer``: the lean client for AMCs and the annuaire (one request at a time
  per pooled connection) and its sans-I/O answer parser;
- ``common``: what both share (token characters, the body size failure).
"""
