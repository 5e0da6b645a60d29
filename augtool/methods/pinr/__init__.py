"""PInR: model-agnostic text condensation with coherence awareness (Stein particles in
embedding space, inverted to text, refined by an LLM)."""
