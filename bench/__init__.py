"""The benchmark: a stub upstream with a set latency, the proxy in front of it, a load generator, a report.

`python -m bench.run` (or `make bench`) measures the bare stub, then the same load through
the proxy, and prints what the proxy adds; then what a key's limits add (admission), and how a
big batch drains and what it does to synchronous callers (batch). `--scenarios` picks among
base, admission and batch (default all); `--peer litellm` adds LiteLLM's proxy to base, measured
between the stub and the proxy. The pieces:

  processes.py  child processes in their own process groups, all stopped on exit
  stub.py       the stub upstream (llmproxy/devtools/stub_upstream.py) in its own process
  proxy.py      PostgreSQL/Redis preparation, setup CLI, gunicorn web and Celery workers
  peer_litellm.py  `--peer litellm`: LiteLLM's proxy (own venv, pinned) in front of the same stub
  loadgen.py    threads with a keep-alive session each: latency, throughput, time to first token
  admission.py  the admission scenario: a key without limits vs one with generous limits, same run
  batch.py      the batch scenario: files + batches API, lines/s vs ideal, a sync probe idle vs draining
  lag.py        answer → ledger: the writer's lag histogram at GET /metrics, scraped around each phase
  report.py     the tables, the targets (PASS/MISS) and bench/results/latest.json, from its parts:
  tables.py        plain-text tables and the figures in them
  peer_report.py   `--peer`: the three-way table and the goals relative to the peer
  batch_report.py  the batch table and its CPU per line by process
  goals.py         the gateway's own goals, each met or not (lag, batch drain, probe)
  run.py        the command line that ties them together
"""
