"""Evaluation: the confusion matrix and its scores (metrics.py), scoring a model on a dataset split
(evaluate.py), the notebook's comparison figures (compare.py), the HTML report (report.py) and the
figures they draw (plots.py, matplotlib, loaded only when a figure is drawn).

Usage::

    from roadseg.evaluation.evaluate import evaluate, format_report
    print(format_report(evaluate("camvid", "../shared/data/camvid", split="val")))
"""
