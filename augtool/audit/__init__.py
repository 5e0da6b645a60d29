"""Quality audit of an augmented set against its originals (``augtool audit``).

The package holds the audit measures, one module per check; each check returns a result
with its ``figures`` and a ``flagged`` list of row ids, ready for the JSON report.
"""
