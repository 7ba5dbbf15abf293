"""The benchmark: a stub upstream with a set latency, the proxy in front of it, a load generator, a report.

`python -m bench.run` (or `make bench`) measures the bare stub, then the same load through
the proxy, and prints what the proxy adds; then what a key's limits add (admission), and how a
big batch drains and what it does to synchronous callers (batch). `--scenarios` picks among
base, admission and batch (default all); `--peer litellm` adds LiteLLM's proxy to base, `--peer floor`
the bare stack the proxy is built on (both: `--peer litellm,floor`), each measured alone between the stub
and the proxy. The pieces:

  processes.py  child processes in their own process groups, all stopped on exit
  stub.py       the stub upstream (llmproxy/devtools/stub_upstream.py) in its own process
  proxy.py      PostgreSQL/Redis preparation, setup CLI, gunicorn web and Celery workers
  peers.py      `--peer`: each peer started in front of the same stub, measured, stopped, in turn
  peer_litellm.py  `--peer litellm`: LiteLLM's proxy (own venv, pinned) in front of the same stub
  peer_floor.py    `--peer floor`: the floor app (floor/) with the proxy's process and thread counts
  floor/        the floor: Flask + Celery + Redis with none of the proxy's features (a separate minimal app)
  answers.py    the sync and streamed requests every peer must answer like OpenAI before it is measured
  loadgen.py    threads with a keep-alive session each: latency, throughput, time to first token
  admission.py  the admission scenario: a key without limits vs one with generous limits, same run
  batch.py      the batch scenario: files + batches API, lines/s vs ideal, a sync probe idle vs draining
  lag.py        answer → ledger: the writer's lag histogram at GET /metrics, scraped around each phase
  measure.py    one target at every (mode, level): the load, its CPU per process, a line per level
  report.py     the tables, the targets (PASS/MISS) and bench/results/latest.json, from its parts:
  tables.py        plain-text tables and the figures in them
  peer_report.py   `--peer`: the table with a row per target and the goals relative to LiteLLM
  floor_report.py  `--peer floor`: the gateway's ratios to its stack's floor (informational)
  admission_report.py  the admission table
  cpu_report.py    the CPU table: CPU ms per request by process, every phase of every target
  batch_report.py  the batch table and its CPU per line by process
  goals.py         the gateway's own goals, each met or not (lag, batch drain, probe)
  options.py    the command line's options and their checks
  run.py        ties them together
"""
