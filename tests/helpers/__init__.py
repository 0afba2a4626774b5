"""What several test modules share, one module per purpose.

No test module imports from another test module (nor from a conftest):
what two of them need lives here, and fixtures stay in the conftests.

* :mod:`api`: a vault behind an aiohttp test client, and its clock;
* :mod:`databases`: a fresh database at the head schema, migrated once per run;
* :mod:`world`: a small organisation built through the API;
* :mod:`items`, :mod:`links`: uploading records and reading them back;
* :mod:`cli`: running the ``kluis`` command in a clean environment;
* :mod:`s3`: storage settings for a test MinIO server;
* :mod:`data`, :mod:`memory`: deterministic bytes, resident memory growth;
* :mod:`at_rest`: the bytes of a database as a backup reader gets them;
* :mod:`polling`: waiting for something to happen, with a deadline.

Real servers are started by ``tests/servers.py``; built files come from
``tests/files.py``.
"""
