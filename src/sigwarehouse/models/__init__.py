"""Model adapters: one interface from a batch of waveforms to task-ordered probabilities.

Heavy imports (torch, transformers) happen inside these modules, which the CLI imports
only inside the commands that need a model, so `sigwh --help` never loads torch.
"""
