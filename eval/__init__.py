"""Evaluation: a library (no UI) that answers a question set with each strategy and reports quality against cost.

Public surface: `eval.workspace.load_eval_set`, `eval.runner` (`RunConfig`, `prepare`, `pending_steps`, `execute`),
`eval.report` (`build_report`, `write_report`, `table`), `eval.metrics` and `eval.quality` (the metric and
correctness definitions), `eval.retrieval_devsets` and `eval.retrieval_runs` (dev-set runs the benchmarks share).
The `bench_*` and `fit_*` modules are scripts (`python -m eval.bench_retrieval`); `penny eval` is api/cli_eval.py.
"""
