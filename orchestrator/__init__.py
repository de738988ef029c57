"""topobench coordinator: CLI, planning, running, statistics, results."""
