"""How the flows are scheduled and served; ``prefect.yaml`` at the repository root is the source."""
