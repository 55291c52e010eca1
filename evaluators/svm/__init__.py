"""VOC07 linear-SVM protocols: the full SVM (`voc07`) and the low-shot SVM (`lowshot`).

`data` extracts the cached Feature1..5 of VOC07 trainval/test, `samples` draws the low-shot
training samples, `common` holds the cost grid, the CV folds and the AP scorer, `linalg` the Gram
operator and `solver` the batched dual solver both protocols share; `reference` the low-shot k
values the reports import. The low-shot plot is drawn by `reports.plots` from the rows.
"""
