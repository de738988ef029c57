"""The orchestrator: requests, planning, the run pipeline, analysis, the dataset, rendering, commands."""

import cluster  # noqa: F401 -- sets Ray's token authentication before any submodule imports ray
