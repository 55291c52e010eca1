"""Model-zoo tables (and the low-shot plot) rendered from the results store into README.md.

`python -m reports [--results results/results.jsonl] [--readme README.md] [--check | --init]`;
`reports.tables.build_tables(frame)`, `reports.render.render_readme(results, readme, init=False)`,
`reports.render.check_readme(results, readme)`, `reports.plots.lowshot_plot(frame, out_png)` and
`reports.plots.lowshot_layers_plot(frame, model, out_png)` (the project's one plotting home for
benchmark results), `reports.published.load_published()` (the `published` rows),
`reports.compare.compare(frame, model)` (`python -m reports --compare MODEL`). Reports import
constants from `dcbench` and `evaluators` (names, layers, k values); nothing below imports `reports`.
"""
