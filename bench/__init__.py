"""Benchmark SharingHub MLflow against a bare `mlflow server` on the same kind of backend.

Run from the repository root with the project's virtualenv:

    python bench/run.py --quick                   # small sizes, under a minute in all
    python bench/run.py --backend sqlite          # full sizes (issue 7)
    python bench/run.py --backend postgresql      # PostgreSQL at 127.0.0.1:5432, user postgres

One run starts, side by side:

- bare: `python -m mlflow server` (uvicorn, `--serve-artifacts`, no auth), the same MLflow;
- service: `python manage.py serve` (gunicorn, serve's default workers and threads, or the
  `THREADS` of the environment), in front of the GitLab double (tests/gitlab_double.py);

with the same worker count, each on a fresh database of its own of the chosen kind. Both are
warmed, then every workload runs in short turns that alternate bare/service, then
service/bare (a few calls per turn, or one heavy call), so that drift on a shared machine hits
both alike. Times are taken client-side with time.perf_counter around each call (or transfer,
page load, burst of concurrent calls). Each server's CPU time (its process tree's user +
system) is read around its own turns, and on PostgreSQL its database's too (the backends
connected to its own database, found in pg_stat_activity): CPU per call, server + database, is
steadier than wall time on a shared machine, and is budgeted at no more than bare's on every
row (issues 12 and 25).

By default every request opens a fresh TCP connection (`Connection: close`): bare uvicorn
with more than one worker stalls ~40 ms on each reused connection (its sockets lack
TCP_NODELAY; gunicorn sets it), which would flatter the service. Rows 1k, 7k and 7wk show
what keep-alive clients, such as MlflowClient, see. Each of these rows and its fresh-connection
twin is also compared with bare's better median of the two modes: bare at its best.

Workloads: 1 log_metric loop, 2 log_batch of 1,000 metrics, 3 get_run on a big run,
4 search_runs over many runs, 5 search_experiments with few then many projects in the
database, 6 artifact upload and download (throughput and the server's peak RSS growth),
7 concurrent clients logging (8 and 32 clients, fresh and keep-alive connections), 8 the UI's
first page load. The GitLab double counts the calls the service makes during each workload.

The package: servers.py starts, reaches, measures (psutil: the process tree's CPU times and
RSS) and stops both servers and the GitLab double; harness.py holds the sizes and the
alternating turns; workloads.py the workloads; report.py the rows, budgets and the section
written to RESULTS.md; cli.py the options and the run. bench/run.py is the entry point.

The Markdown table goes to stdout and into a section of bench/RESULTS.md (one section per
backend and size, replaced on each run). Both servers are stopped at the end, also on failure,
Ctrl-C or SIGTERM.
"""
