"""TopEx: explore a classifier's output space, name and score its clusters of mistakes,
and fill the worst gap with LLM-generated samples."""
