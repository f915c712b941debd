"""designkit: many controlled experiments inside one LLM pretraining run.

The planner (`designkit.planning`), the design schema (`designkit.design`), the corpus
tools (`designkit.data`) and the statistics (`designkit.analysis`) import without torch.
The training and scoring engine lives in the separate `engine` package.
"""

__version__ = "0.1.0"
