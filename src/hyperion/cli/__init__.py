"""The ``hyperion`` command line: thin commands over ``hyperion.api.client.Client``.

Modules:
- ``main``: the click group, global options (``--data-dir``, ``--server``, ``--token``) and the one
  place where failures become ``error: ...`` messages and exit codes;
- ``context``: how the data dir, server address and token are found;
- ``local_cluster`` / ``daemon``: ``up`` and ``down`` and the process mechanics behind them;
- ``jobs``: submit, queue, status, logs, cancel;
- ``cluster``: apply, nodes, and reading + locally validating YAML files;
- ``output``: tables, ages, memory and ``-o json``.
"""
